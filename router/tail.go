package router

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cejson"
)

// tailHub fans accepted events out to the live tails (GET /api/v1/tail).
// Without a subscriber, publish costs one atomic load.
type tailHub struct {
	n    atomic.Int32
	mu   sync.Mutex
	subs map[*tailSub]struct{}
}

// tailSub is one live tail: a bounded queue of frames; a tail that does not
// keep up loses frames (counted and reported to it), never slows ingest.
type tailSub struct {
	source  string // only events of this Junction source, when set
	frames  chan []byte
	dropped atomic.Int64
}

// maxTails bounds the live tails at once.
const maxTails = 32

// tailFrame is one accepted event as a tail shows it.
type tailFrame struct {
	Source string       `json:"source"`
	Event  *event.Event `json:"event"`
}

// MarshalJSON writes the event with cejson.Marshal (*/*+json data as a
// JSON value, as the JSON format asks).
func (f tailFrame) MarshalJSON() ([]byte, error) {
	ej, err := cejson.Marshal(f.Event)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Source string          `json:"source"`
		Event  json.RawMessage `json:"event"`
	}{f.Source, ej})
}

func (h *tailHub) subscribe(source string) *tailSub {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxTails {
		return nil
	}
	if h.subs == nil {
		h.subs = map[*tailSub]struct{}{}
	}
	s := &tailSub{source: source, frames: make(chan []byte, 256)}
	h.subs[s] = struct{}{}
	h.n.Add(1)
	return s
}

func (h *tailHub) unsubscribe(s *tailSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.n.Add(-1)
	}
}

// publish offers events accepted from source to every tail.
func (h *tailHub) publish(source string, events []*event.Event) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.source != "" && s.source != source {
			continue
		}
		for _, e := range events {
			b, err := json.Marshal(tailFrame{Source: source, Event: e})
			if err != nil {
				continue
			}
			select {
			case s.frames <- b:
			default:
				s.dropped.Add(1)
			}
		}
	}
}

// serveTail serves GET /api/v1/tail[?source=S]: Server-Sent Events, one
// "data:" frame per accepted event ({"source": NAME, "event": EVENT}),
// a comment every 15 s to keep the connection open, and a "dropped" event
// when this tail fell behind and lost frames.
func (r *Router) serveTail(w http.ResponseWriter, req *http.Request) {
	source := req.URL.Query().Get("source")
	if len(source) > 256 {
		apiError(w, http.StatusBadRequest, "source: too long")
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		apiError(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub := r.tail.subscribe(source)
	if sub == nil {
		apiError(w, http.StatusTooManyRequests, "too many live tails; close one and retry")
		return
	}
	defer r.tail.unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(": junction live tail\n\n"))
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	var reported int64
	for {
		select {
		case <-req.Context().Done():
			return
		case <-ping.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
		case b := <-sub.frames:
			if d := sub.dropped.Load(); d > reported {
				reported = d
				w.Write([]byte("event: dropped\ndata: " + itoa(d) + "\n\n"))
			}
			w.Write([]byte("data: "))
			w.Write(b)
			if _, err := w.Write([]byte("\n\n")); err != nil {
				return
			}
		}
		fl.Flush()
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
