package natssink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// streamEvents reads back every message of stream, in order, as events.
func streamEvents(t testing.TB, js jetstream.JetStream, stream string) []event.Event {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []event.Event
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var e event.Event
		if ct := m.Header.Get("content-type"); ct == event.ApplicationCloudEventsJSON {
			e, err = plugintest.StructuredEvent(m.Data)
		} else {
			attrs := map[string]string{}
			for k, v := range m.Header {
				if name, ok := strings.CutPrefix(strings.ToLower(k), "ce-"); ok {
					attrs[name] = v[0]
				}
			}
			e, err = plugintest.BinaryEvent(attrs, ct, m.Data)
		}
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, e)
	}
	return out
}

// TestSuite runs the sink conformance suite against the NATS server's
// JetStream, in both formats.
func TestSuite(t *testing.T) {
	_, js := natstest.Connect(t)
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSinkSuite(t, plugintest.SinkHarness{
				Type: "nats",
				New: func(t testing.TB) plugintest.SinkTarget {
					stream, prefix := natstest.NewStream(t, js)
					return plugintest.SinkTarget{
						Config:  fmt.Sprintf("url: %s\nsubject: '%q'\nformat: %s\n", natstest.URL(), prefix+".x", format),
						Receive: func(t testing.TB) []event.Event { return streamEvents(t, js, stream) },
					}
				},
				Fail: func(t testing.TB, f plugintest.SinkFailure) string {
					switch f {
					case plugintest.FailRetryable: // no stream captures the subject
						return fmt.Sprintf("url: %s\nsubject: '\"nostream%s\"'\n", natstest.URL(), natstest.Suffix())
					case plugintest.FailPermanent: // the subject is no valid one
						return fmt.Sprintf("url: %s\nsubject: '\"a.\" + \"*\"'\n", natstest.URL())
					}
					return ""
				},
				Caps: plugintest.SinkCaps{Batch: true, Ordered: true},
			})
		})
	}
}
