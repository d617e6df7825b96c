package natssink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// msgEvent decodes a message in either format.
func msgEvent(m *nats.Msg) (event.Event, error) {
	ct := m.Header.Get("content-type")
	if ct == event.ApplicationCloudEventsJSON {
		return plugintest.StructuredEvent(m.Data)
	}
	attrs := map[string]string{}
	for k, v := range m.Header {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "ce-"); ok {
			attrs[name] = v[0]
		}
	}
	return plugintest.BinaryEvent(attrs, ct, m.Data)
}

// subscriber collects the events published on a core NATS subject.
type subscriber struct {
	mu     sync.Mutex
	events []event.Event
	errs   []error
}

func subscribe(t testing.TB, nc *nats.Conn, subject string) *subscriber {
	t.Helper()
	s := &subscriber{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		e, err := msgEvent(m)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.errs = append(s.errs, err)
			return
		}
		s.events = append(s.events, e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return s
}

// Receive returns the events received so far.
func (s *subscriber) Receive(t testing.TB) []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		t.Errorf("a message is no CloudEvent: %v", err)
	}
	return append([]event.Event(nil), s.events...)
}

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
		e, err := msgEvent(&nats.Msg{Header: m.Header, Data: m.Data})
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, e)
	}
	return out
}

// TestSuite runs the sink conformance suite against the NATS server:
// JetStream in both formats, and core NATS.
func TestSuite(t *testing.T) {
	nc, js := natstest.Connect(t)
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
	// Core NATS: no broker confirmation, so no retryable failure to
	// classify; a subscriber on one connection receives in order.
	t.Run("core", func(t *testing.T) {
		plugintest.RunSinkSuite(t, plugintest.SinkHarness{
			Type: "nats",
			New: func(t testing.TB) plugintest.SinkTarget {
				subject := "core" + natstest.Suffix()
				sub := subscribe(t, nc, subject)
				return plugintest.SinkTarget{
					Config:  fmt.Sprintf("url: %s\nsubject: '%q'\njetstream: false\n", natstest.URL(), subject),
					Receive: sub.Receive,
				}
			},
			Fail: func(t testing.TB, f plugintest.SinkFailure) string {
				if f == plugintest.FailPermanent { // the subject is no valid one
					return fmt.Sprintf("url: %s\nsubject: '\"a.\" + \"*\"'\njetstream: false\n", natstest.URL())
				}
				return ""
			},
			Caps: plugintest.SinkCaps{Batch: true, Ordered: true},
		})
	})
}
