package webhook

import (
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	shared "github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/internal/text"
)

// The encoding and error helpers moved to internal/cehttp; these names keep
// the package's tests as they were.

func setBinaryHeaders(h http.Header, e *event.Event) error { return shared.SetBinaryHeaders(h, e) }

func pctEncode(s string) string { return shared.PctEncode(s) }

func oneLine(s string, max int) string { return text.OneLine(s, max) }

const maxErrLen = shared.MaxErrLen
