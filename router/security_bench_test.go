package router

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/testcerts"
)

// BenchmarkIngressTLS measures requests through the real ingress (one
// event each, 1 KB, journal on disk, a discarding sink) over HTTP and
// HTTPS in one run, so that the cost of TLS shows: keep-alive connections
// (the usual case: a handshake per connection), and a new connection per
// request (a handshake per request, the worst case).
func BenchmarkIngressTLS(b *testing.B) {
	dir := b.TempDir()
	ca, err := testcerts.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ca.Server(1)
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := pair.Write(certFile, keyFile); err != nil {
		b.Fatal(err)
	}
	payload := strings.Repeat("x", 1000)
	for _, mode := range []string{"http", "https", "https-new-conn", "http+auth"} {
		b.Run(mode, func(b *testing.B) {
			var y strings.Builder
			fmt.Fprintf(&y, "journal: {dir: %q}\n", b.TempDir())
			if strings.HasPrefix(mode, "https") {
				fmt.Fprintf(&y, "http: {tls: {certFile: %s, keyFile: %s}}\n", certFile, keyFile)
			}
			y.WriteString("sources:\n  - {name: src, type: test-ingest, path: /e")
			header := http.Header{}
			if mode == "http+auth" {
				y.WriteString(", auth: {bearer: [bench-token-0123456789]}")
				header.Set("Authorization", "Bearer bench-token-0123456789")
			}
			y.WriteString("}\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n  - {name: all, to: [out]}\n")
			cfg := y.String()
			p := compile(b, cfg)
			r := runRouter(b, p, Options{})
			eventually(b, 5*time.Second, "ready", r.Ready)
			scheme := "http"
			if strings.HasPrefix(mode, "https") {
				scheme = "https"
			}
			url := scheme + "://" + r.IngressAddr() + "/e"
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, MaxIdleConnsPerHost: 64, DisableKeepAlives: mode == "https-new-conn"}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			start := discarded.n.Load()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", url, strings.NewReader(payload))
					req.Header = header.Clone()
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 202 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			for discarded.n.Load()-start < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
	_ = os.Remove(certFile)
}

// BenchmarkCredentialsCheck measures the check of one Authorization header
// against 10 bearer tokens (hash, then constant-time comparison with each).
func BenchmarkCredentialsCheck(b *testing.B) {
	var tokens []string
	for i := range 10 {
		tokens = append(tokens, fmt.Sprintf("token-%02d-0123456789abcdef0123456789abcdef", i))
	}
	c := newCredentials("bench", tokens, nil)
	h := "Bearer " + tokens[9]
	b.ReportAllocs()
	for b.Loop() {
		if !c.check(h) {
			b.Fatal("no match")
		}
	}
}
