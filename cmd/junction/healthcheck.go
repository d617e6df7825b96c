package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
)

// healthcheck asks a running junction's admin API for /healthz (or /readyz
// with --ready): exit 0 on 200, else 1. The distroless image has no curl,
// so the Dockerfile's HEALTHCHECK runs this.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck")
	admin := fs.String("admin", "", "the admin API's `URL` (default: admin.listen of the config, else http://127.0.0.1:9090)")
	cfgPath := configFlag(fs, "the config `FILE` whose admin.listen to ask (default: ./junction.yaml if present, else the built-in default)")
	ready := fs.Bool("ready", false, "ask /readyz (ready to take events) instead of /healthz (alive)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "healthcheck", fmt.Sprintf("unexpected argument %q (the admin URL is --admin URL)", rest[0]))
	}
	base := *admin
	if base == "" {
		var err error
		if base, err = adminURL(*cfgPath); err != nil {
			fmt.Fprintln(stderr, "junction healthcheck:", joinLines(err.Error()))
			return 1
		}
	} else if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	target := strings.TrimRight(base, "/") + "/healthz"
	if *ready {
		target = strings.TrimRight(base, "/") + "/readyz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintln(stderr, "junction healthcheck:", err)
		return 1
	}
	// Straight to the admin API, never through an HTTP_PROXY.
	// With admin.tls it checks that the server answers, not who it is:
	// /healthz carries nothing secret, and the probe runs beside the server.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "junction healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line := fmt.Sprintf("%s: %s", target, resp.Status)
	if b := joinLines(string(body)); b != "" {
		line += ": " + b
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "junction healthcheck:", line)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// adminURL is the admin API's URL from the config serve would run (path,
// else ./junction.yaml, else the built-in default), as a client reaches it:
// an unspecified host (0.0.0.0, ::, none) becomes loopback.
func adminURL(path string) (string, error) {
	if path == "" {
		if _, err := os.Stat("junction.yaml"); err == nil {
			path = "junction.yaml"
		}
	}
	var cfg *config.Config
	var err error
	if path == "" {
		cfg, err = config.Default(os.LookupEnv)
	} else {
		cfg, err = config.Load(path)
	}
	if err != nil {
		return "", err
	}
	listen := cfg.Admin.Listen
	if listen == "off" {
		return "", fmt.Errorf("admin.listen is off in %s: nothing to ask (give --admin URL)", cfg.File)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("admin.listen %q in %s: %w", listen, cfg.File, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	scheme := "http"
	if cfg.Admin.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// adminRoots is the pool a client of the admin API trusts: the system's
// CAs, and the certificate of admin.tls of the config serve would run (so
// that a self-signed one works).
func adminRoots(path string) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if path == "" {
		if _, err := os.Stat("junction.yaml"); err == nil {
			path = "junction.yaml"
		}
	}
	if path == "" {
		return pool
	}
	if cfg, err := config.Load(path); err == nil && cfg.Admin.TLS != nil {
		if b, err := os.ReadFile(cfg.Admin.TLS.CertFile); err == nil {
			pool.AppendCertsFromPEM(b)
		}
	}
	return pool
}
