package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: an order of a SKU in the catalogue is 200, one of another
// SKU 400 with the SKU named, a body that is not JSON 400, a GET 405.
func TestHandler(t *testing.T) {
	h := handler(map[string]bool{"apple": true})
	for _, c := range []struct {
		method, body string
		code         int
		says         string
	}{
		{http.MethodPost, `{"sku":"apple"}`, http.StatusOK, ""},
		{http.MethodPost, `{"sku":"plum"}`, http.StatusBadRequest, `unknown sku "plum"`},
		{http.MethodPost, `{"sku":`, http.StatusBadRequest, "not JSON"},
		{http.MethodGet, "", http.StatusMethodNotAllowed, "POST orders here"},
	} {
		req := httptest.NewRequest(c.method, "/orders", strings.NewReader(c.body))
		req.Header.Set("ce-id", "order-1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.says) {
			t.Errorf("%s %s: %d %q; want %d with %q", c.method, c.body, rec.Code, rec.Body, c.code, c.says)
		}
	}
}
