package config

import (
	"net/url"
	"strings"
)

// Telemetry configures what Junction reports about itself besides metrics.
type Telemetry struct {
	// OTLP, when set, exports traces over OTLP/HTTP; without it tracing
	// is off and costs nothing.
	OTLP *OTLP `yaml:"otlp"`
}

// OTLP configures the OpenTelemetry trace exporter.
type OTLP struct {
	// Endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT:
	// traces are posted to Endpoint + "/v1/traces". Required.
	Endpoint string `yaml:"endpoint"`
	// Headers are added to every export request (e.g. an API key).
	Headers map[string]string `yaml:"headers"`
	// ServiceName is the service.name resource attribute. Default
	// "junction".
	ServiceName string `yaml:"serviceName"`
	// SampleRatio is the share of new traces recorded, 0 to 1; a request
	// that arrives with a sampled traceparent is recorded whatever it is
	// (parent-based). Default 1.
	SampleRatio *float64 `yaml:"sampleRatio"`
}

// DefaultServiceName is the service.name of Junction's spans.
const DefaultServiceName = "junction"

// TracesURL is where spans are posted: the endpoint with /v1/traces.
func (o *OTLP) TracesURL() string {
	return strings.TrimRight(o.Endpoint, "/") + "/v1/traces"
}

// Ratio is the sample ratio, 1 when unset.
func (o *OTLP) Ratio() float64 {
	if o.SampleRatio == nil {
		return 1
	}
	return *o.SampleRatio
}

// validate checks telemetry; at gives the position of a key path.
func (t *Telemetry) validate(errs *Errors, at func(string) Pos) {
	o := t.OTLP
	if o == nil {
		return
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.Endpoint == "" {
		errs.Addf(at("telemetry.otlp"), "", "telemetry.otlp.endpoint: required (the collector's base URL, e.g. http://127.0.0.1:4318)")
	} else if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Addf(at("telemetry.otlp.endpoint"), "", "telemetry.otlp.endpoint: must be an http or https URL such as http://127.0.0.1:4318, not %q", o.Endpoint)
	} else if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1/traces") {
		errs.Addf(at("telemetry.otlp.endpoint"), "", "telemetry.otlp.endpoint: the base URL, without /v1/traces (it is appended)")
	}
	if r := o.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs.Addf(at("telemetry.otlp.sampleRatio"), "", "telemetry.otlp.sampleRatio: must be between 0 and 1")
	}
	for k, v := range o.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
			errs.Addf(at("telemetry.otlp.headers"), "", "telemetry.otlp.headers: invalid header %q", k)
		}
	}
}
