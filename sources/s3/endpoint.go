package s3source

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/junctionhq/junction/internal/s3event"
	"github.com/junctionhq/junction/sources"
)

// Endpoint is the s3 source with transport sns or webhook, served on the
// shared HTTP ingress at its path. A notification is answered 202 only
// once its events are in the journal.
type Endpoint struct {
	path      string
	transport string
	maxBody   int64
	log       *slog.Logger

	// webhook: the SHA-256 of the expected Authorization header, compared
	// in constant time.
	token [sha256.Size]byte

	// sns
	topics map[string]bool
	verify bool
	certs  *certCache
	// client GETs SubscribeURLs and signing certificates.
	client *http.Client
	// trustURL reports whether a SubscribeURL or SigningCertURL may be
	// fetched for a topic of region; tests replace it.
	trustURL func(u *url.URL, region string) bool
	now      func() time.Time
}

var _ sources.HTTPSource = (*Endpoint)(nil)

// Path returns the URL path the source answers on.
func (e *Endpoint) Path() string { return e.path }

// Handler returns the handler that serves the path, handing events to in.
func (e *Endpoint) Handler(in sources.Ingester) http.Handler {
	if e.transport == TransportSNS {
		return &snsHandler{e: e, in: in}
	}
	return &webhookHandler{e: e, in: in}
}

// webhookHandler serves MinIO's webhook target: POST with the notification
// JSON and the Authorization header; HEAD is MinIO's liveness probe.
type webhookHandler struct {
	e  *Endpoint
	in sources.Ingester
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := h.e
	if r.Method != http.MethodPost && r.Method != http.MethodHead {
		w.Header().Set("Allow", "POST, HEAD")
		e.refuse(w, r, h.in, http.StatusMethodNotAllowed, sources.ReasonMethodNotAllowed, "method "+r.Method+" not allowed (use POST)")
		return
	}
	sum := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	if subtle.ConstantTimeCompare(sum[:], e.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="junction"`)
		e.refuse(w, r, h.in, http.StatusUnauthorized, sources.ReasonUnauthorized, "missing or wrong Authorization header (the authToken)")
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, ok := e.readBody(w, r, h.in)
	if !ok {
		return
	}
	e.ingest(w, r, h.in, body)
}

// readBody reads the request body within the limit; when it cannot, it
// refuses the request and returns false.
func (e *Endpoint) readBody(w http.ResponseWriter, r *http.Request, in sources.Ingester) ([]byte, bool) {
	body, err := sources.ReadBody(w, r, e.maxBody)
	if err != nil {
		status, label, reason := sources.ReadError(err)
		e.refuse(w, r, in, status, label, reason)
		return nil, false
	}
	return body, true
}

// ingest converts a notification body and ingests its events, answering
// 202 once they are journaled, 200 for an s3:TestEvent, 400 for a body
// that is not an S3 notification.
func (e *Endpoint) ingest(w http.ResponseWriter, r *http.Request, in sources.Ingester, body []byte) {
	events, test, err := s3event.Convert(body, false)
	if err != nil {
		e.refuse(w, r, in, http.StatusBadRequest, sources.ReasonMalformed, err.Error())
		return
	}
	if test != nil {
		e.log.Debug("s3:TestEvent acknowledged and dropped", "bucket", test.Bucket)
		w.WriteHeader(http.StatusOK)
		return
	}
	err = in.Ingest(r.Context(), events)
	sources.AnswerIngest(w, r, in, events, err, e.log)
}

// refuse answers status with reason and counts it under label; the router
// logs it (sources.RefusalLogger).
func (e *Endpoint) refuse(w http.ResponseWriter, r *http.Request, in sources.Ingester, status int, label, reason string) {
	sources.Refuse(w, in, status, label, reason)
}
