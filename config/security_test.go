package config

import (
	"strings"
	"testing"
)

func TestCheckExposure(t *testing.T) {
	tests := []struct {
		admin string
		err   string
	}{
		{admin: "{listen: 127.0.0.1:9090}"},
		{admin: "{listen: '[::1]:9090'}"},
		{admin: "{listen: localhost:9090}"},
		{admin: "{listen: 'off'}"},
		{admin: "{listen: 0.0.0.0:9090}", err: "t.yaml:1:17: admin.listen: 0.0.0.0:9090 takes connections from other hosts and the admin API has no admin.auth"},
		{admin: "{listen: ':9090'}", err: "admin.listen: :9090 takes connections from other hosts"},
		{admin: "{listen: 10.1.2.3:9090}", err: "admin.listen: 10.1.2.3:9090 takes"},
		{admin: "{listen: 0.0.0.0:9090, insecure: true}"},
		{admin: "{listen: 0.0.0.0:9090, auth: {bearer: [t0ken]}}"},
		{admin: "{listen: 0.0.0.0:9090, tls: {certFile: testdata/tls/cert.pem, keyFile: testdata/tls/key.pem}}", err: "takes connections from other hosts"},
		{admin: "{listen: 0.0.0.0:9090, tls: {certFile: testdata/tls/cert.pem, keyFile: testdata/tls/key.pem, clientCAFile: testdata/tls/cert.pem}}"},
		{admin: "{listen: 0.0.0.0:9090, tls: {certFile: testdata/tls/cert.pem, keyFile: testdata/tls/key.pem, clientCAFile: testdata/tls/cert.pem, clientAuth: verifyIfGiven}}", err: "takes connections"},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.yaml", []byte("admin: "+tt.admin+"\n"), noEnv)
		if err != nil {
			t.Fatalf("%s: %v", tt.admin, err)
		}
		err = cfg.CheckExposure()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.admin, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: %v, want an error with %q", tt.admin, err, tt.err)
		}
	}
}

func TestDefaultAdminToken(t *testing.T) {
	env := map[string]string{"JUNCTION_ADMIN_LISTEN": "0.0.0.0:9090"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := Default(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckExposure(); err == nil || !strings.HasPrefix(err.Error(), "(built-in default):9:11: admin.listen: 0.0.0.0:9090 takes connections") ||
		!strings.HasSuffix(err.Error(), "; set JUNCTION_ADMIN_TOKEN (the built-in config's admin token), or JUNCTION_ADMIN_LISTEN=127.0.0.1:9090") {
		t.Errorf("0.0.0.0 without a token: %v", err)
	}
	env["JUNCTION_ADMIN_TOKEN"] = "s3cret-token"
	if cfg, err = Default(lookup); err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckExposure(); err != nil || cfg.Admin.Auth == nil || cfg.Admin.Auth.Bearer[0] != "s3cret-token" {
		t.Errorf("with JUNCTION_ADMIN_TOKEN: auth %+v, %v", cfg.Admin.Auth, err)
	}
	env["JUNCTION_ADMIN_TOKEN"] = "two words"
	if _, err := Default(lookup); err == nil || !strings.Contains(err.Error(), "JUNCTION_ADMIN_TOKEN: the token has a character") {
		t.Errorf("a bad token: %v", err)
	}
}
