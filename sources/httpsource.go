package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/text"
)

// Reasons passed to Ingester.Rejected; they label
// junction_events_rejected_total.
const (
	ReasonMalformed        = "malformed"
	ReasonTooLarge         = "too_large"
	ReasonUnsupportedMedia = "unsupported_media_type"
	ReasonMethodNotAllowed = "method_not_allowed"
	ReasonUnauthorized     = "unauthorized"
	ReasonUnavailable      = "unavailable"
	// ReasonCancelled: the request ended before its events were journaled.
	ReasonCancelled = "cancelled"
	ReasonInternal  = "internal"
	// ReasonTimeout: the request body did not arrive within the ingress's
	// read timeout (http.readTimeout); answered 408.
	ReasonTimeout = "timeout"
)

// MaxReason bounds a reason sent back to a client, in bytes.
const MaxReason = 300

// OneLine makes s safe to send back as a reason: text.OneLine with
// MaxReason. A short printable ASCII s is returned as it is, without
// allocating.
func OneLine(s string) string {
	if len(s) <= MaxReason && printableASCII(s) {
		return s
	}
	return text.OneLine(s, MaxReason)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// EventReason describes an error of the CloudEvents SDK (from parsing an
// event or from Validate) as a one-line reason naming the attributes:
// `invalid attribute "id": MUST be a non-empty string; ...`, else
// "invalid event: " and the error, without the input that the SDK's JSON
// parser appends to its errors.
func EventReason(err error) string { return OneLine(EventError(err, "invalid event: ")) }

// EventError is EventReason before it is made one line and bounded, with
// invalid in place of "invalid event: " before an error that does not name
// attributes. Sources that bound their reasons otherwise use it.
func EventError(err error, invalid string) string {
	var ve event.ValidationError
	if errors.As(err, &ve) {
		keys := make([]string, 0, len(ve))
		for k := range ve {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("invalid attribute %q: %v", strings.TrimPrefix(k, "extension:"), ve[k])
		}
		return strings.Join(parts, "; ")
	}
	msg := err.Error()
	// jsoniter appends the input around the error: it may hold the payload.
	if i := strings.Index(msg, ", error found in #"); i >= 0 {
		msg = msg[:i]
	}
	return invalid + msg
}

// CheckPath checks the path key of an HTTP source's config: a plain URL path
// starting with "/" that http.ServeMux takes literally (no wildcards). Its
// errors are config.FieldErrors at "path".
func CheckPath(path string) error {
	switch {
	case path == "":
		return config.FieldErrorf("path", "required: the URL path to serve, such as /events")
	case !strings.HasPrefix(path, "/"):
		return config.FieldErrorf("path", "must start with \"/\", got %q", path)
	case strings.ContainsAny(path, " \t\r\n?#{}"):
		return config.FieldErrorf("path", "must be a plain URL path (no spaces, '?', '#', '{' or '}'), got %q", path)
	}
	if _, err := url.ParseRequestURI(path); err != nil {
		return config.FieldErrorf("path", "%q is not a URL path: %v", path, errors.Unwrap(err))
	}
	return nil
}

// BodyLimit is the body limit of an HTTP source in bytes: own when it is set
// (above zero), else the ingress-wide http.maxBodySize, else
// config.DefaultMaxBodySize.
func (d Deps) BodyLimit(own config.ByteSize) int64 {
	switch {
	case own > 0:
		return int64(own)
	case d.MaxBodySize > 0:
		return d.MaxBodySize
	}
	return int64(config.DefaultMaxBodySize)
}

// ReadBody reads the whole request body, at most limit bytes: beyond it, the
// error is an *http.MaxBytesError. A Content-Length over the limit is refused
// before reading. The buffer grows with what arrives, never sized from
// Content-Length alone: it starts at the announced length (+1) up to
// firstBuffer, or at unknownLengthBuffer without one, and grows as the body
// fills it (four times over up to the announced length, else twice over up
// to the limit), so a client that announces a megabyte and sends ten bytes
// costs 4 KiB. ReadError says how to answer its errors.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	// most is the largest buffer the body can need: its length, or the
	// limit, +1 to see EOF (or the limit crossed) without growing. An
	// announced length earns faster growth: the last step lands on it.
	most, factor := limit+1, int64(2)
	size := int64(unknownLengthBuffer)
	if r.ContentLength >= 0 {
		most, factor = r.ContentLength+1, 4
		size = min(most, firstBuffer)
	}
	b := make([]byte, 0, size)
	for {
		// body.Read, not io.ReadFull or io.ReadAll: the reader then stays
		// on the stack.
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			if int64(cap(b)) >= most {
				// More than announced (a Request made in process): the
				// limit still bounds what MaxBytesReader gives.
				most, factor = max(limit+1, int64(cap(b))+1), 2
			}
			next := factor * int64(cap(b))
			if next+next/4 >= most {
				// Not a step more for a small remainder (the +1 above).
				next = most
			}
			b = slices.Grow(b, int(next)-len(b))
		}
	}
}

// The first buffer of ReadBody: the Content-Length (+1) up to firstBuffer,
// or unknownLengthBuffer for a chunked body.
const (
	firstBuffer         = 4 << 10
	unknownLengthBuffer = 512
)

// ReadError is the refusal of a request whose body ReadBody could not read:
// 413 (ReasonTooLarge) when the body is over the limit; 408 (ReasonTimeout)
// when it did not arrive within the server's read timeout; else 400
// (ReasonMalformed). The reason never names the connection's addresses,
// which net errors carry.
func ReadError(err error) (status int, label, reason string) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, ReasonTooLarge, "body over the limit of " + config.ByteSize(tooLarge.Limit).String()
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return http.StatusRequestTimeout, ReasonTimeout, "request body not received in time"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return http.StatusBadRequest, ReasonMalformed, "read body: " + connCause(oe)
	}
	return http.StatusBadRequest, ReasonMalformed, "read body: " + err.Error()
}

// connCause is the innermost cause of a network error ("connection reset
// by peer"), without the operation and addresses that *net.OpError's text
// holds; "connection error" when even the cause names an address.
func connCause(oe *net.OpError) string {
	var cause error = oe
	for next := errors.Unwrap(cause); next != nil; next = errors.Unwrap(cause) {
		cause = next
	}
	msg := "connection error"
	if cause != error(oe) {
		msg = cause.Error()
	}
	for _, a := range []net.Addr{oe.Source, oe.Addr} {
		if a != nil && a.String() != "" && strings.Contains(msg, a.String()) {
			return "connection error"
		}
	}
	return msg
}

// RefusalLogger is implemented by an Ingester that logs the refusals of
// its HTTP source: the router's logs them at debug level, with the source's
// path, at most one line per reason every 10 s with a count. Refuse calls
// it, so that every HTTP source's refusals are logged in one place.
type RefusalLogger interface {
	// LogRefusal logs one refusal: the status answered, its reason label
	// (ReasonMalformed...) and the one-line reason sent to the client
	// (OneLine). Never the request's body or credentials.
	LogRefusal(status int, label, detail string)
}

// Refuse answers status with a one-line plain-text reason, counts the
// refusal under label and logs it when in is a RefusalLogger. A 503 gets
// Retry-After: 1.
func Refuse(w http.ResponseWriter, in Ingester, status int, label, reason string) {
	in.Rejected(label)
	if l, ok := in.(RefusalLogger); ok {
		l.LogRefusal(status, label, OneLine(reason))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, OneLine(reason), status)
}

// AnswerIngest answers an HTTP request whose events in.Ingest took with the
// result err: 202 when nil; 413 when the journal refused the size; 503 with
// Retry-After when the journal is unavailable or too slow, or the request was
// cancelled (never a 2xx for events that were not journaled); else 500,
// whose reason does not reveal err. Failures are logged on log with the
// first event's ce_id, ce_type and ce_source.
func AnswerIngest(w http.ResponseWriter, r *http.Request, in Ingester, events []*event.Event, err error, log *slog.Logger) {
	if err == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(events) > 0 {
		e := events[0]
		log = log.With("ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
		if len(events) > 1 {
			log = log.With("events", len(events))
		}
	}
	switch {
	case errors.Is(err, ErrTooLarge):
		log.Debug("refused events: too large for the journal", "err", err)
		Refuse(w, in, http.StatusRequestEntityTooLarge, ReasonTooLarge, "event too large for the journal")
	case r.Context().Err() != nil:
		log.Debug("ingest cancelled", "err", err)
		Refuse(w, in, http.StatusServiceUnavailable, ReasonCancelled, "request cancelled before the events were journaled; retry")
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// The router logs refused appends, rate-limited: one line per
		// refusal here would flood the log while the journal is full.
		log.Debug("refused events: journal unavailable", "err", err)
		Refuse(w, in, http.StatusServiceUnavailable, ReasonUnavailable, "journal unavailable; retry later")
	default:
		log.Error("ingest events", "err", err)
		Refuse(w, in, http.StatusInternalServerError, ReasonInternal, "internal error: the events were not stored")
	}
}
