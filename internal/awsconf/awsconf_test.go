package awsconf

import (
	"context"
	"testing"
)

func TestQueueRegion(t *testing.T) {
	for in, want := range map[string]string{
		"https://sqs.eu-west-3.amazonaws.com/123456789012/orders":     "eu-west-3",
		"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/orders": "cn-north-1",
		"http://127.0.0.1:4566/000000000000/orders":                   "",
		"https://sqs.eu-west-3.example.com/123456789012/orders":       "",
		"":   "",
		":/": "",
	} {
		if got := QueueRegion(in); got != want {
			t.Errorf("QueueRegion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewSQSRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	for _, tc := range []struct{ queue, region, want string }{
		{"https://sqs.eu-west-3.amazonaws.com/123456789012/orders", "", "eu-west-3"},
		{"https://sqs.eu-west-3.amazonaws.com/123456789012/orders", "ap-south-1", "ap-south-1"},
		{"http://127.0.0.1:4566/000000000000/orders", "", DefaultRegion},
	} {
		c, err := NewSQS(context.Background(), tc.queue, Options{Region: tc.region, Endpoint: "http://127.0.0.1:4566", MaxAttempts: 2, MaxIdleConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Options().Region; got != tc.want {
			t.Errorf("%s with region %q: %q, want %q", tc.queue, tc.region, got, tc.want)
		}
		if got := *c.Options().BaseEndpoint; got != "http://127.0.0.1:4566" {
			t.Errorf("endpoint %q", got)
		}
	}
}
