package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdminClientCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"a bearer token is required"}`))
			return
		}
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"echo":"` + in["say"] + `"}`))
	}))
	defer srv.Close()
	token, admin, cfg, asJSON := "", strings.TrimPrefix(srv.URL, "http://"), "", false
	f := &clientFlags{admin: &admin, config: &cfg, token: &token, json: &asJSON}
	t.Setenv("JUNCTION_ADMIN_TOKEN", "s3cret")
	c, err := f.client()
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Echo string }
	if _, err := c.call(context.Background(), http.MethodPost, "/x", map[string]string{"say": "hi"}, &out); err != nil || out.Echo != "hi" {
		t.Fatalf("call: %v, %+v", err, out)
	}
	c.token = "wrong"
	_, err = c.call(context.Background(), http.MethodGet, "/x", nil, nil)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Message != "a bearer token is required" {
		t.Fatalf("got %v", err)
	}
	var stderr bytes.Buffer
	if code := clientError(&stderr, "status", err); code != 1 || !strings.Contains(stderr.String(), "junction status: 401 Unauthorized\na bearer token is required") {
		t.Fatalf("clientError: %d %q", code, stderr.String())
	}
}
