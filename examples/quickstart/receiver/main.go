// Command receiver is the quickstart's webhook receiver: it listens on
// 127.0.0.1:9999 (or $RECEIVER_LISTEN), answers 200 to every POST, and
// prints what arrived: the CloudEvents attributes (ce-* headers) and the
// body, one block per request. Run it beside Junction to see the
// big-orders route deliver:
//
//	go run ./examples/quickstart/receiver
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
)

func main() {
	addr := os.Getenv("RECEIVER_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:9999"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST events here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var attrs []string
		for k, v := range r.Header {
			if k := strings.ToLower(k); strings.HasPrefix(k, "ce-") || k == "content-type" {
				attrs = append(attrs, fmt.Sprintf("  %s: %s", k, strings.Join(v, ", ")))
			}
		}
		sort.Strings(attrs)
		fmt.Printf("received %s %s\n%s\n  body: %s\n", r.Method, r.URL.Path, strings.Join(attrs, "\n"), body)
		w.WriteHeader(http.StatusOK)
	})
	log.Printf("receiver listening on http://%s (POST anything; Ctrl-C stops)", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
