package natssink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sinks"
)

// lastMsg returns the last message stored on subject in stream.
func lastMsg(t *testing.T, js jetstream.JetStream, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("read back %s: %v", subject, err)
	}
	return m
}

func TestDeliverBinary(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q + tenant'", natstest.URL(), prefix+"."))
	if err := s.Deliver(context.Background(), newEvent("b-1")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	m := lastMsg(t, js, stream, prefix+".acme")
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          "b-1",
		"ce-source":      "/shop",
		"ce-type":        "com.example.order.created",
		"ce-subject":     "order 42 ✓",
		"ce-time":        "2024-05-01T10:00:00.0000005Z",
		"ce-dataschema":  "https://example.com/order.json",
		"ce-tenant":      "acme",
		"ce-priority":    "3",
		"content-type":   "application/json",
		"Nats-Msg-Id":    "natstest " + prefix + ".acme /shop b-1",
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(m.Header) != len(want) {
		t.Errorf("headers %v", m.Header)
	}
	if string(m.Data) != `{"amount":120,"customer":"c-1"}` {
		t.Errorf("payload %s", m.Data)
	}
}

// TestDeliverDuplicate: a retried delivery of the same event is stored once.
func TestDeliverDuplicate(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q'", natstest.URL(), prefix+".x"))
	for range 3 {
		if err := s.Deliver(context.Background(), newEvent("dup")); err != nil {
			t.Fatal(err)
		}
	}
	other := newEvent("dup")
	other.SetSource("/other") // same id, other source: another event
	if err := s.Deliver(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(context.Background(), stream)
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d messages stored, want 2", info.State.Msgs)
	}
}

func TestDeliverCore(t *testing.T) {
	nc, _ := natstest.Connect(t)
	subject := "core" + natstest.Suffix()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q'\njetstream: false", natstest.URL(), subject))
	if err := s.Deliver(context.Background(), newEvent("c-1")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("ce-id") != "c-1" || m.Header.Get("Nats-Msg-Id") != "" {
		t.Errorf("headers %v", m.Header)
	}
}

func TestDeliverErrors(t *testing.T) {
	natstest.Connect(t)
	big := newEvent("big")
	_ = big.SetData("application/octet-stream", make([]byte, 2<<20))
	ctl := newEvent("ctl")
	ctl.SetSubject("a\nb")
	tests := []struct {
		name, yaml string
		e          *event.Event
		permanent  bool
		want       string
	}{
		{"nil subject", "subject: data.missing", newEvent("1"), true, "evaluate subject: the expression yielded nil"},
		{"space from an attribute", "subject: '\"x.\" + subject'", newEvent("1"), true, `subject: invalid subject "x.order 42 ✓": white space and control characters are not allowed`},
		{"wildcard", "subject: '\"a.\" + \"*\"'", newEvent("1"), true, `subject: invalid subject "a.*": wildcards cannot be published to`},
		{"too large", "subject: '\"nostream" + natstest.Suffix() + "\"'", big, true, "message larger than the server's max_payload"},
		{"control character", "subject: '\"nostream" + natstest.Suffix() + "\"'", ctl, true, "encode event: attribute subject holds a control character, which a NATS header cannot carry (format: structured can)"},
		{"no stream", "subject: '\"nostream" + natstest.Suffix() + "\"'", newEvent("1"), false, "no JetStream stream captures this subject (create one, or set jetstream: false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build(t, "url: "+natstest.URL()+"\n"+tt.yaml)
			err := s.Deliver(context.Background(), tt.e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if perm, _ := sinks.Classify(err); perm != tt.permanent {
				t.Errorf("permanent %v, want %v", perm, tt.permanent)
			}
			if msg := err.Error(); len(msg) > maxErrLen+4 || strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
				t.Errorf("not one bounded line: %q", msg)
			}
		})
	}
}

// TestBrokerOutage: while the NATS server is down a delivery fails as
// retryable (quickly, within the attempt's timeout); once it is back, the
// router's retry succeeds. The server is a real one that the test stops
// and starts again on the same port and store.
func TestBrokerOutage(t *testing.T) {
	for _, jetStream := range []bool{true, false} {
		t.Run(fmt.Sprint("jetstream=", jetStream), func(t *testing.T) {
			srv := natstest.StartServer(t)
			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			js, _ := jetstream.New(nc)
			if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}}); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			s := build(t, fmt.Sprintf("url: %s\nsubject: '\"out.x\"'\njetstream: %v", srv.URL(), jetStream))
			if err := s.Deliver(context.Background(), newEvent("1")); err != nil {
				t.Fatalf("Deliver while up: %v", err)
			}
			srv.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = s.Deliver(ctx, newEvent("2"))
			cancel()
			if err == nil {
				t.Fatal("Deliver succeeded while the server is down")
			}
			if perm, _ := sinks.Classify(err); perm {
				t.Fatalf("permanent while the server is down: %v", err)
			}
			t.Logf("while down: %v", err)
			srv.Start()
			plugintest.Eventually(t, 20*time.Second, "a delivery after the restart", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				return s.Deliver(ctx, newEvent("2")) == nil
			})
			if !jetStream {
				return
			}
			nc, err = nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ = jetstream.New(nc)
			st, _ := js.Stream(context.Background(), "OUT")
			info, err := st.Info(context.Background())
			if err != nil || info.State.Msgs != 2 {
				t.Errorf("stored %v (%v), want 2", info.State.Msgs, err)
			}
		})
	}
}

// TestBuildWithoutBroker: the sink builds while the broker is down, and
// delivers once it is up.
func TestBuildWithoutBroker(t *testing.T) {
	srv := natstest.StartServer(t)
	srv.Stop()
	s := build(t, fmt.Sprintf("url: %s\nsubject: '\"x\"'\njetstream: false", srv.URL()))
	err := s.Deliver(context.Background(), newEvent("1"))
	if err == nil || !strings.Contains(err.Error(), "not connected to NATS nats://127.0.0.1:") {
		t.Fatalf("error %v", err)
	}
	srv.Start()
	plugintest.Eventually(t, 20*time.Second, "a delivery", func() bool { return s.Deliver(context.Background(), newEvent("1")) == nil })
}

func TestDeliverTimeout(t *testing.T) {
	_, js := natstest.Connect(t)
	_, prefix := natstest.NewStream(t, js)
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q'", natstest.URL(), prefix+".x"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := s.Deliver(ctx, newEvent("t"))
	if err == nil {
		t.Fatal("no error")
	}
	if perm, _ := sinks.Classify(err); perm {
		t.Errorf("permanent: %v", err)
	}
	if !strings.Contains(err.Error(), "no PubAck before the delivery timeout") {
		t.Errorf("error %v", err)
	}
}
