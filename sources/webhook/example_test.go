package webhooksource

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

//go:embed example.yaml
var exampleYAML string

func TestREADMEContainsExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.ReadmeHasExample(t, string(readme), plugintest.YAMLBlock(exampleYAML)+"\n")
}

func TestExample(t *testing.T) {
	c := plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig)[0].Config
	if c.Path != "/hooks/github" || c.Verify == nil || c.Verify.Scheme != SchemeHMACSHA256 || c.Verify.Secret != "change-me" {
		t.Fatalf("unexpected config: path %q verify %+v", c.Path, c.Verify)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "github", MaxBodySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := s.(*Webhook)
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)

	// The README's curl example.
	body := `{"ref":"refs/heads/main","repository":{"full_name":"octo/hello"}}`
	mac := hmac.New(sha256.New, []byte("change-me"))
	mac.Write([]byte(body))
	headers := map[string]string{
		"Content-Type":        "application/json",
		"X-GitHub-Event":      "push",
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
	}
	if resp := send(t, srv, request{path: "/hooks/github", headers: headers, body: body}); resp.status != http.StatusAccepted {
		t.Fatalf("answer %d %q, want 202", resp.status, resp.body)
	}
	e := rec.Last()
	if e.Type() != "com.github.push" || e.Subject() != "octo/hello" || e.Source() != "/hooks/github" {
		t.Errorf("event type %q subject %q source %q", e.Type(), e.Subject(), e.Source())
	}
	if resp := send(t, srv, request{path: "/hooks/github", headers: headers, body: body + " "}); resp.status != http.StatusUnauthorized {
		t.Errorf("tampered body: answer %d, want 401", resp.status)
	}

	// The secret comes from the environment when set.
	c = plugintest.DecodeExample(t, exampleYAML, map[string]string{"GITHUB_WEBHOOK_SECRET": "from-env"}, "source", Type, NewConfig)[0].Config
	if c.Verify.Secret != "from-env" {
		t.Errorf("secret not taken from GITHUB_WEBHOOK_SECRET")
	}
}

// TestREADMEStandardWebhooks loads the Standard Webhooks config shown in
// README.md and sends it a request signed as the README's shell does.
func TestREADMEStandardWebhooks(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(readme), "```yaml\n")[1:] {
		part, _, _ = strings.Cut(part, "```")
		if strings.Contains(part, "name: billing") {
			block = part
		}
	}
	if block == "" {
		t.Fatal("README.md has no yaml block with the billing source")
	}
	c, err := load(t, "README.md", block, map[string]string{"BILLING_WEBHOOK_SECRET": swSecret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	w := s.(*Webhook)
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := `{"type":"invoice.paid","data":{"id":"in_1"}}`
	resp := send(t, srv, request{path: "/hooks/billing", body: body, headers: map[string]string{
		"Content-Type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": ts,
		"webhook-signature": signStandard(t, swSecret, "msg_1", ts, body),
	}})
	if resp.status != http.StatusAccepted {
		t.Fatalf("answer %d %q, want 202", resp.status, resp.body)
	}
	if e := rec.Last(); e.Type() != "com.example.billing.invoice.paid" || e.ID() != "msg_1" {
		t.Errorf("event type %q id %q", e.Type(), e.ID())
	}
}

// printer is an Ingester that prints what it is given.
type printer struct{}

func (printer) Ingest(_ context.Context, events []*event.Event) error {
	for _, e := range events {
		fmt.Println(e.Type(), e.Subject(), e.Source())
	}
	return nil
}

func (printer) Rejected(reason string) { fmt.Println("rejected:", reason) }

// A webhook source built in code and served by a test server, as the
// router serves it on its HTTP ingress.
func Example() {
	c := NewConfig()
	c.Path = "/hooks/github"
	if err := config.Decode(mustNode(`
attributes:
  type: '"com.github." + headers["x-github-event"]'
  subject: body.repository.full_name
`), c); err != nil {
		panic(err)
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "github", MaxBodySize: 1 << 20})
	if err != nil {
		panic(err)
	}
	src := s.(sources.HTTPSource)
	mux := http.NewServeMux()
	mux.Handle(src.Path(), src.Handler(printer{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", strings.NewReader(`{"repository":{"full_name":"octo/hello"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	resp, err = http.Get(srv.URL + "/hooks/github")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Allow"))
	// Output:
	// com.github.push octo/hello /hooks/github
	// 202 Accepted
	// rejected: method_not_allowed
	// 405 Method Not Allowed POST
}

func mustNode(s string) *yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		panic(err)
	}
	return &n
}
