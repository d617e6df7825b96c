// Command warehouse is examples/operations' webhook receiver: a warehouse
// that takes orders for the SKUs in its catalogue. It listens on
// 127.0.0.1:9999 (or $WAREHOUSE_LISTEN) and answers every POST whose JSON
// body has a "sku" in the catalogue with 200, any other with 400 ("unknown
// sku"), which Junction does not retry: the order is dead-lettered at once.
// The catalogue is $WAREHOUSE_SKUS, comma-separated (default apple,pear);
// restart the warehouse with a longer list to "fix" it, then redrive.
//
//	go run ./examples/operations/warehouse
//	WAREHOUSE_SKUS=apple,pear,plum go run ./examples/operations/warehouse
//
// Each request prints one line: accepted or rejected, the event id, the
// sku, and the replay id (ce-junctionreplay) when the order is a replay.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	addr := env("WAREHOUSE_LISTEN", "127.0.0.1:9999")
	catalogue := map[string]bool{}
	for _, sku := range strings.Split(env("WAREHOUSE_SKUS", "apple,pear"), ",") {
		catalogue[strings.TrimSpace(sku)] = true
	}
	http.Handle("/", handler(catalogue))
	log.Printf("warehouse listening on http://%s, catalogue %s", addr, env("WAREHOUSE_SKUS", "apple,pear"))
	log.Fatal(http.ListenAndServe(addr, nil))
}

// env is the environment variable name, or def when it is unset or empty.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// handler accepts the orders whose sku is in catalogue and rejects the
// others with 400, printing one line per request.
func handler(catalogue map[string]bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST orders here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "warehouse: reading the order: "+err.Error(), http.StatusBadRequest)
			return
		}
		var order struct {
			SKU string `json:"sku"`
		}
		if err := json.Unmarshal(body, &order); err != nil {
			http.Error(w, "warehouse: the order is not JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		id, replay := r.Header.Get("ce-id"), r.Header.Get("ce-junctionreplay")
		if replay != "" {
			replay = " replay " + replay
		}
		if !catalogue[order.SKU] {
			fmt.Printf("rejected %s sku %s%s\n", id, order.SKU, replay)
			http.Error(w, fmt.Sprintf("unknown sku %q", order.SKU), http.StatusBadRequest)
			return
		}
		fmt.Printf("accepted %s sku %s%s\n", id, order.SKU, replay)
		w.WriteHeader(http.StatusOK)
	})
}
