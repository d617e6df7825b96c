package router

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/journal"
)

// deadLetterJSON is one dead-letter store entry as the admin API shows it.
type deadLetterJSON struct {
	ID       string          `json:"id"`
	Route    string          `json:"route"`
	Sink     string          `json:"sink"`
	Attempts int             `json:"attempts"`
	Reason   string          `json:"reason"`
	Error    string          `json:"error"`
	Time     time.Time       `json:"time"`
	Accepted *time.Time      `json:"acceptedAt,omitempty"`
	Event    json.RawMessage `json:"event"`
}

// maxDeadLetterPage bounds ?limit= of GET /api/v1/deadletters.
const maxDeadLetterPage = 1000

// listDeadLetters serves GET /api/v1/deadletters?route=R&sink=S&limit=N&after=CURSOR:
// the dead-letter store, newest first, and the cursor of the next page.
func (r *Router) listDeadLetters(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	query := journal.DeadLetterQuery{Route: q.Get("route"), Sink: q.Get("sink"), Limit: 100}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLetterPage {
			apiError(w, http.StatusBadRequest, "limit: must be a number between 1 and "+strconv.Itoa(maxDeadLetterPage))
			return
		}
		query.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			apiError(w, http.StatusBadRequest, "after: not a cursor from a previous page")
			return
		}
		query.Before = n
	}
	dls, next, err := r.journal.DeadLetters(req.Context(), query)
	if err != nil {
		r.log.Warn("list dead letters", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the journal cannot be read now; retry")
		return
	}
	out := struct {
		DeadLetters []deadLetterJSON `json:"deadLetters"`
		Next        string           `json:"next,omitempty"`
	}{DeadLetters: make([]deadLetterJSON, 0, len(dls))}
	for _, dl := range dls {
		j := deadLetterJSON{ID: strconv.FormatUint(dl.ID, 10), Route: dl.Route, Sink: dl.Sink, Attempts: dl.Attempts,
			Reason: dl.Reason, Error: dl.Error, Time: dl.At.UTC()}
		if !dl.Accepted.IsZero() {
			at := dl.Accepted.UTC()
			j.Accepted = &at
		}
		var e event.Event
		if err := journal.DecodeEvent(dl.Data, &e); err == nil {
			j.Event, err = cejson.Marshal(&e)
			if err != nil {
				j.Event = nil
			}
		}
		if j.Event == nil {
			j.Event = json.RawMessage("null")
		}
		out.DeadLetters = append(out.DeadLetters, j)
	}
	if next != 0 {
		out.Next = strconv.FormatUint(next, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError answers an admin API error as {"error": msg}.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// maxRedrive bounds the dead letters one redrive request sends again.
const maxRedrive = 10000

// redriveDeadLetters serves POST /api/v1/deadletters/redrive: body
// {"ids": [...]} or {"route": R, "sink": S} (either may be omitted to take
// every route or sink). Each dead letter is journaled again for its
// original sink, where it starts a fresh policy, and then leaves the store;
// if it fails again it comes back. Answers {"redriven": N}.
func (r *Router) redriveDeadLetters(w http.ResponseWriter, req *http.Request) {
	var body struct {
		IDs   []string `json:"ids"`
		Route string   `json:"route"`
		Sink  string   `json:"sink"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, "body: "+oneLine(err.Error(), 200)+` (want {"ids": [...]} or {"route": R, "sink": S})`)
		return
	}
	if len(body.IDs) > 0 && (body.Route != "" || body.Sink != "") {
		apiError(w, http.StatusBadRequest, "give ids, or route and sink, not both")
		return
	}
	ctx := req.Context()
	var dls []journal.DeadLetter
	if len(body.IDs) > 0 {
		if len(body.IDs) > maxRedrive {
			apiError(w, http.StatusBadRequest, "at most "+strconv.Itoa(maxRedrive)+" ids per request")
			return
		}
		for _, s := range body.IDs {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil || id == 0 {
				apiError(w, http.StatusBadRequest, "ids: "+strconv.Quote(oneLine(s, 40))+" is not a dead-letter id")
				return
			}
			dl, err := r.journal.DeadLetter(ctx, id)
			if err != nil {
				continue // gone: already redriven or expired
			}
			dls = append(dls, dl)
		}
	} else {
		q := journal.DeadLetterQuery{Route: body.Route, Sink: body.Sink, Limit: maxRedrive}
		var err error
		if dls, _, err = r.journal.DeadLetters(ctx, q); err != nil {
			r.log.Warn("redrive dead letters", "err", err)
			apiError(w, http.StatusServiceUnavailable, "the journal cannot be read now; retry")
			return
		}
	}
	n := 0
	for _, dl := range dls {
		at := time.Now() // before the new delivery's first attempt
		// Journal first, then remove: a crash in between delivers twice,
		// never loses.
		if err := r.journal.Append(ctx, []journal.Entry{{Sink: dl.Sink, Route: dl.Route, Data: dl.Data}}); err != nil {
			r.log.Warn("redrive dead letter", "id", dl.ID, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"redriven": n, "error": "the journal refused a write; retry"})
			return
		}
		if err := r.journal.DeleteDeadLetter(ctx, dl.ID); err != nil {
			r.log.Warn("remove redriven dead letter", "id", dl.ID, "err", err)
		}
		r.traceRedriven(dl, at)
		n++
	}
	r.log.Info("dead letters redriven", "count", n)
	writeJSON(w, http.StatusOK, map[string]int{"redriven": n})
}
