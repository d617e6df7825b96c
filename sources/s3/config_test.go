package s3source

import (
	"context"
	_ "embed"
	"strings"
	"testing"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

func TestConfigValidate(t *testing.T) {
	const (
		q     = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/uploads\n"
		hook  = "path: /s3/minio\nauthToken: s3cret\n"
		topic = "arn:aws:sns:us-east-1:123456789012:uploads"
		sns   = "path: /s3/sns\ntopics: [" + topic + "]\n"
	)
	cases := []plugintest.Case{
		{"sqs minimal", q, ""},
		{"sqs full", "transport: sqs\n" + q + `region: eu-west-1
endpoint: http://127.0.0.1:4566
pollers: 4
batchSize: 5
waitTime: 0s
visibilityTimeout: 12h`, ""},
		{"webhook minimal", hook, ""},
		{"webhook scheme and token", "path: /s3\nauthToken: Token abc", ""},
		{"webhook explicit", "transport: webhook\n" + hook + "maxBodySize: 256KiB", ""},
		{"sns minimal", sns, ""},
		{"sns full", "transport: sns\n" + sns + "verifySignatures: false\nmaxBodySize: 512KiB", ""},
		{"sns fifo topic", "path: /s3\ntopics: [arn:aws:sns:us-east-1:123456789012:uploads.fifo]", ""},
		{"nothing", "{}", `config:1:1: source "uploads": transport: required: sqs (with queueUrl), sns (with path and topics) or webhook (with path and authToken)`},
		{"unknown transport", "transport: kafka", `config:1:12: source "uploads": transport: "kafka" is not one of sqs, sns, webhook`},
		{"webhook without token", "path: /s3", `config:1:1: source "uploads": authToken: required: the token of MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>; use ${ENV} to keep it out of the file`},
		{"webhook blank token", "path: /s3\nauthToken: ' '", `config:2:12: source "uploads": authToken: required: the token of MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>; use ${ENV} to keep it out of the file`},
		{"webhook token with three words", "path: /s3\nauthToken: a b c", `config:2:12: source "uploads": authToken: must be a token, or a scheme and a token ("Bearer abc")`},
		{"webhook without path", "authToken: x", `config:1:1: source "uploads": path: required: the URL path to serve, such as /events`},
		{"webhook bad path", "path: s3\nauthToken: x", `config:1:7: source "uploads": path: must start with "/", got "s3"`},
		{"transport sns without topics", "transport: sns\npath: /s3", `config:1:1: source "uploads": topics: required: list the ARNs of the SNS topics to accept, such as arn:aws:sns:us-east-1:123456789012:uploads`},
		{"sns empty topics", "path: /s3\ntopics: []", `config:2:9: source "uploads": topics: required: list the ARNs of the SNS topics to accept, such as arn:aws:sns:us-east-1:123456789012:uploads`},
		{"sns bad topic", "path: /s3\ntopics: [uploads, " + topic + ", " + topic + "]", strings.Join([]string{
			`config:2:10: source "uploads": topics[0]: "uploads" is not an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:uploads`,
			`config:2:63: source "uploads": topics[2]: "arn:aws:sns:us-east-1:123456789012:uploads" is listed twice`,
		}, "\n")},
		{"sns wildcard topic", "path: /s3\ntopics: ['arn:aws:sns:us-east-1:123456789012:*']", `config:2:10: source "uploads": topics[0]: "arn:aws:sns:us-east-1:123456789012:*" is not an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:uploads`},
		{"keys of another transport", q + "path: /s3\nauthToken: x\ntopics: [" + topic + "]\nverifySignatures: true\nmaxBodySize: 1KiB", strings.Join([]string{
			`config:2:7: source "uploads": path: not used by transport sqs (only by sns and webhook)`,
			`config:3:12: source "uploads": authToken: not used by transport sqs (only by webhook)`,
			`config:4:9: source "uploads": topics: not used by transport sqs (only by sns)`,
			`config:5:19: source "uploads": verifySignatures: not used by transport sqs (only by sns)`,
			`config:6:14: source "uploads": maxBodySize: not used by transport sqs (only by sns and webhook)`,
		}, "\n")},
		{"sqs keys with webhook", hook + "region: us-east-1\nendpoint: http://x\npollers: 1\nbatchSize: 1\nwaitTime: 1s\nvisibilityTimeout: 1s", strings.Join([]string{
			`config:3:9: source "uploads": region: not used by transport webhook (only by sqs)`,
			`config:4:11: source "uploads": endpoint: not used by transport webhook (only by sqs)`,
			`config:5:10: source "uploads": pollers: not used by transport webhook (only by sqs)`,
			`config:6:12: source "uploads": batchSize: not used by transport webhook (only by sqs)`,
			`config:7:11: source "uploads": waitTime: not used by transport webhook (only by sqs)`,
			`config:8:20: source "uploads": visibilityTimeout: not used by transport webhook (only by sqs)`,
		}, "\n")},
		{"token with sns", sns + "authToken: x", `config:3:12: source "uploads": authToken: not used by transport sns (only by webhook)`},
		{"transport sqs without queueUrl", "transport: sqs", `config:1:1: source "uploads": queueUrl: required`},
		{"queueUrl scheme", "queueUrl: sqs://uploads", `config:1:11: source "uploads": queueUrl: "sqs://uploads" is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/uploads`},
		{"queueUrl no name", "queueUrl: https://sqs.us-east-1.amazonaws.com/", `config:1:11: source "uploads": queueUrl: "https://sqs.us-east-1.amazonaws.com/" has no queue name (the last path segment)`},
		{"region", q + "region: US East", `config:2:9: source "uploads": region: "US East" is not a region name such as us-east-1`},
		{"endpoint", q + "endpoint: 127.0.0.1:4566", `config:2:11: source "uploads": endpoint: "127.0.0.1:4566" is not an http or https URL such as http://127.0.0.1:4566`},
		{"pollers", q + "pollers: 0", `config:2:10: source "uploads": pollers: must be between 1 and 100`},
		{"batchSize", q + "batchSize: 11", `config:2:12: source "uploads": batchSize: must be between 1 and 10 (an SQS limit)`},
		{"waitTime", q + "waitTime: 1500ms", `config:2:11: source "uploads": waitTime: must be whole seconds between 0s and 20s (an SQS limit)`},
		{"visibilityTimeout", q + "visibilityTimeout: 13h", `config:2:20: source "uploads": visibilityTimeout: must be whole seconds between 1s and 12h (an SQS limit)`},
		{"verifySignatures type", sns + "verifySignatures: maybe", `config:3:19: source "uploads": verifySignatures: invalid boolean "maybe" (use true or false)`},
		{"unknown key", q + "queue: x", `config:2:1: source "uploads": unknown key "queue" (known keys: authToken, batchSize, endpoint, maxBodySize, path, pollers, queueUrl, region, topics, transport, verifySignatures, visibilityTimeout, waitTime)`},
	}
	plugintest.CheckCases(t, check, cases)
}

func TestBuildDefaults(t *testing.T) {
	c, errs := check(t, "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/uploads")
	if errs != "" {
		t.Fatal(errs)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "uploads"})
	if err != nil {
		t.Fatal(err)
	}
	q, ok := s.(*Queue)
	if !ok {
		t.Fatalf("Build returned %T, want *Queue", s)
	}
	if p := q.poller; p.Pollers != DefaultPollers || p.BatchSize != DefaultBatchSize || p.WaitTime != 20 || p.Visibility != DefaultVisibilityTimeout {
		t.Errorf("defaults: pollers %d batchSize %d waitTime %d visibility %v", p.Pollers, p.BatchSize, p.WaitTime, p.Visibility)
	}
	if r := q.poller.Client.Options().Region; r != "eu-west-1" {
		t.Errorf("region %q, want the queue URL's eu-west-1", r)
	}

	e := buildEndpoint(t, "path: /s3\ntopics: [arn:aws:sns:us-east-1:123456789012:uploads]", nil)
	if !e.verify || e.maxBody != 1<<20 || e.Path() != "/s3" || e.transport != TransportSNS {
		t.Errorf("sns endpoint: verify %v maxBody %d path %q transport %q", e.verify, e.maxBody, e.Path(), e.transport)
	}

	// A built config that is invalid is refused with the key's error.
	bad := NewConfig()
	bad.Transport = "kafka"
	if _, err := bad.Build(context.Background(), sources.Deps{Name: "uploads"}); err == nil ||
		err.Error() != `build s3 source "uploads": transport: "kafka" is not one of sqs, sns, webhook` {
		t.Errorf("Build of an invalid config: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sources.Lookup(Type)
	if !ok {
		t.Fatalf("source type %q is not registered", Type)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	got := map[string]string{}
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig) {
		if _, err := e.Config.Build(context.Background(), sources.Deps{Name: e.Plugin.Name}); err != nil {
			t.Fatalf("build %s: %v", e.Plugin.Name, err)
		}
		got[e.Plugin.Name] = e.Config.transport()
	}
	want := map[string]string{"minio-uploads": TransportWebhook, "aws-uploads": TransportSQS, "sns-uploads": TransportSNS}
	for name, tr := range want {
		if got[name] != tr {
			t.Errorf("example source %q: transport %q, want %q", name, got[name], tr)
		}
	}
	cfg := plugintest.ParseExample(t, exampleYAML, nil)
	if len(cfg.Routes) == 0 || !strings.Contains(cfg.Routes[0].Filter.Src, `type startsWith "com.amazonaws.s3.ObjectCreated:"`) {
		t.Error("example.yaml: the first route should filter on the S3 event type")
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, plugintest.YAMLBlock(exampleYAML)+"\n")
}
