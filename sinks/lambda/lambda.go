// Package lambdasink is the "lambda" sink: it invokes an AWS Lambda
// function (or any server that speaks the Lambda Invoke API) with each
// event, synchronously (RequestResponse) or asynchronously (Event). With a
// synchronous invocation, a function that returns a CloudEvent in the JSON
// format has it routed on as the reply (sinks.ReplySink).
//
// Failures are classified by the Lambda answer: an error of the handler
// (FunctionError Unhandled or Handled), throttling, service and network
// errors and timeouts are retried; a function that does not exist, a
// payload Lambda refuses or an invalid parameter is permanent.
package lambdasink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/text"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "lambda"

// Invocation types.
const (
	// InvocationRequestResponse waits for the function's result, which may
	// be a reply event.
	InvocationRequestResponse = "RequestResponse"
	// InvocationEvent queues the event for the function (Lambda answers
	// 202 at once); there is no reply.
	InvocationEvent = "Event"
)

// Payload modes.
const (
	// PayloadEvent sends the whole CloudEvent in the JSON format.
	PayloadEvent = "event"
	// PayloadData sends the event's data alone.
	PayloadData = "data"
)

// Defaults of Config.
const (
	DefaultInvocationType = InvocationRequestResponse
	DefaultPayload        = PayloadEvent
	// DefaultRegion is used when neither the config, the function's ARN
	// nor the AWS configuration (AWS_REGION, profiles) names a region.
	DefaultRegion = awsconf.DefaultRegion
	// maxIdleConns bounds the keep-alive connections to Lambda.
	maxIdleConns = 64
	// defaultTimeout bounds an invocation whose caller has no deadline.
	defaultTimeout = 15 * time.Minute
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the lambda sink's config.
type Config struct {
	// Function is the function's name, ARN or partial ARN, optionally
	// with a version or alias (name:alias). Required.
	Function string `yaml:"function"`
	// Region is the AWS region. Default: the region of an ARN, else the
	// AWS configuration (AWS_REGION, profile), else us-east-1.
	Region string `yaml:"region"`
	// Endpoint overrides the Lambda endpoint, for compatible servers.
	Endpoint string `yaml:"endpoint"`
	// InvocationType is RequestResponse (default) or Event.
	InvocationType string `yaml:"invocationType"`
	// Payload is event (default: the CloudEvent as JSON) or data (the
	// event's data alone).
	Payload string `yaml:"payload"`
	// Qualifier is a version or alias to invoke.
	Qualifier string `yaml:"qualifier"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{InvocationType: DefaultInvocationType, Payload: DefaultPayload}
}

var _ sinks.Config = (*Config)(nil)

var (
	// functionRE is the FunctionName pattern of the Lambda API: a name, a
	// partial ARN (account:function:name) or an ARN, with an optional
	// version or alias.
	functionRE  = regexp.MustCompile(`^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]{1,64})(:(\$LATEST|[a-zA-Z0-9-_]{1,128}))?$`)
	arnRegionRE = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):`)
	qualifierRE = regexp.MustCompile(`^(\$LATEST|[a-zA-Z0-9$_-]{1,128})$`)
)

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Function == "":
		errs = append(errs, config.FieldErrorf("function", "required"))
	case len(c.Function) > 170 || !functionRE.MatchString(c.Function):
		errs = append(errs, config.FieldErrorf("function", "%q is not a function name (letters, digits, '-' and '_', at most 64) or ARN such as arn:aws:lambda:us-east-1:123456789012:function:label-push", c.Function))
	}
	errs = append(errs, awsconf.CheckClient(c.Region, c.Endpoint, "http://127.0.0.1:3002")...)
	switch c.InvocationType {
	case InvocationRequestResponse, InvocationEvent:
	default:
		errs = append(errs, config.FieldErrorf("invocationType", "must be RequestResponse or Event, not %q", c.InvocationType))
	}
	switch c.Payload {
	case PayloadEvent, PayloadData:
	default:
		errs = append(errs, config.FieldErrorf("payload", "must be event or data, not %q", c.Payload))
	}
	if c.Qualifier != "" && !qualifierRE.MatchString(c.Qualifier) {
		errs = append(errs, config.FieldErrorf("qualifier", "%q is not a version or alias name", c.Qualifier))
	}
	return errors.Join(errs...)
}

// newClient makes the Lambda client: credentials from the AWS default
// chain, the region as documented on Config.Region, the endpoint if set.
// The SDK does not retry an invocation (it could run the function twice
// within one attempt): the router's delivery policy does.
func newClient(ctx context.Context, c *Config, tr *awsconf.Transport) (*lambda.Client, error) {
	region := c.Region
	if region == "" {
		if m := arnRegionRE.FindStringSubmatch(c.Function); m != nil {
			region = m[1]
		}
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Region: region, MaxAttempts: 1, MaxIdleConns: maxIdleConns, Transport: tr})
	if err != nil {
		return nil, err
	}
	return lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	}), nil
}

// Build makes the Lambda client. It does not reach Lambda: a function that
// cannot be reached fails deliveries, not the start.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(ctx, c, deps)
}

// New makes a lambda sink from a validated config.
func New(ctx context.Context, c *Config, deps sinks.Deps) (*Sink, error) {
	tr := &awsconf.Transport{}
	client, err := newClient(ctx, c, tr)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		client:         client,
		transport:      tr,
		function:       aws.String(c.Function),
		invocationType: types.InvocationTypeRequestResponse,
		display:        c.Function,
		data:           c.Payload == PayloadData,
	}
	if c.InvocationType == InvocationEvent {
		s.invocationType = types.InvocationTypeEvent
	}
	if c.Qualifier != "" {
		s.qualifier = aws.String(c.Qualifier)
		s.display += ":" + c.Qualifier
	}
	log.Debug("lambda sink ready", "function", s.display, "invocation_type", c.InvocationType, "payload", c.Payload)
	return s, nil
}

// Sink is the lambda sink. It is safe for concurrent use.
type Sink struct {
	client         *lambda.Client
	transport      *awsconf.Transport
	function       *string
	qualifier      *string
	invocationType types.InvocationType
	display        string
	data           bool
}

var (
	_ sinks.Sink      = (*Sink)(nil)
	_ sinks.ReplySink = (*Sink)(nil)
)

// Deliver invokes the function with e and classifies the outcome; a reply
// is ignored.
func (s *Sink) Deliver(ctx context.Context, e *event.Event) error {
	_, err := s.invoke(ctx, e, false)
	return err
}

// DeliverReply invokes the function with e. With RequestResponse, a result
// that is a CloudEvent in the JSON format (an object with specversion) is
// returned as the reply; an invalid one is a permanent failure. Other
// results, and Event invocations, give no reply. ctx's deadline bounds the
// invocation.
func (s *Sink) DeliverReply(ctx context.Context, e *event.Event) (*event.Event, error) {
	return s.invoke(ctx, e, true)
}

func (s *Sink) invoke(ctx context.Context, e *event.Event, wantReply bool) (*event.Event, error) {
	start := time.Now()
	payload, err := s.payload(e)
	if err != nil {
		return nil, s.fail(sinks.Permanent(err), "%v", err)
	}
	in := &lambda.InvokeInput{
		FunctionName:   s.function,
		Qualifier:      s.qualifier,
		Payload:        payload,
		InvocationType: s.invocationType,
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	out, err := s.client.Invoke(ctx, in)
	if err != nil {
		return nil, s.callError(ctx, start, err)
	}
	if out.FunctionError != nil {
		// The handler failed: it may pass next time (at least once).
		msg := functionErrorMessage(out.Payload)
		return nil, s.fail(sinks.Retryable(errors.New("function error "+*out.FunctionError), 0), "function error %s: %s", *out.FunctionError, msg)
	}
	if s.invocationType == types.InvocationTypeEvent || !wantReply {
		return nil, nil
	}
	return s.reply(out.Payload)
}

// payload encodes e as the invocation's payload, which Lambda wants to be
// JSON.
func (s *Sink) payload(e *event.Event) ([]byte, error) {
	if !s.data {
		b, err := cejson.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		return b, nil
	}
	data := e.Data()
	switch {
	case len(data) == 0:
		// Lambda hands the function {} for an empty payload.
		return nil, nil
	case cejson.IsJSON(e.DataContentType()) && json.Valid(data):
		// JSON data (no datacontenttype counts as JSON) is sent as it is.
		return data, nil
	case utf8.Valid(data):
		return json.Marshal(string(data))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(data))
}

// reply returns the event in a RequestResponse result, if it is one.
func (s *Sink) reply(payload []byte) (*event.Event, error) {
	var probe struct {
		SpecVersion json.RawMessage `json:"specversion"`
	}
	if len(payload) == 0 || payload[0] != '{' || json.Unmarshal(payload, &probe) != nil || probe.SpecVersion == nil {
		return nil, nil
	}
	r, err := cehttp.ParseStructured(payload)
	if err != nil {
		return nil, s.fail(sinks.Permanent(fmt.Errorf("invalid reply event: %w", err)), "invalid reply event: %v", err)
	}
	return r, nil
}

// functionErrorMessage is "errorType: errorMessage" from a function error's
// payload, or the start of the payload.
func functionErrorMessage(payload []byte) string {
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(payload, &fe) == nil && (fe.ErrorType != "" || fe.ErrorMessage != "") {
		if fe.ErrorType == "" {
			return fe.ErrorMessage
		}
		return fe.ErrorType + ": " + fe.ErrorMessage
	}
	if len(payload) == 0 {
		return "no details"
	}
	return text.OneLine(string(payload), 200)
}

// callError classifies a failed Invoke call.
func (s *Sink) callError(ctx context.Context, start time.Time, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		msg := ae.ErrorMessage()
		if msg == "" {
			msg = "no message"
		}
		var after time.Duration
		var tm *types.TooManyRequestsException
		if errors.As(err, &tm) && tm.RetryAfterSeconds != nil {
			if n, perr := strconv.Atoi(*tm.RetryAfterSeconds); perr == nil && n > 0 {
				after = min(time.Duration(n)*time.Second, sinks.MaxRetryAfter)
			}
		}
		var cls error
		switch {
		case retryableCode(code):
			cls = sinks.Retryable(err, after)
		case permanentCode(code):
			cls = sinks.Permanent(err)
		default:
			// An unknown code: Lambda's HTTP status, else its fault, decides
			// as for a webhook.
			status := httpStatus(err)
			switch {
			case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
				cls = sinks.Retryable(err, after)
			case status >= 400 || ae.ErrorFault() == smithy.FaultClient:
				cls = sinks.Permanent(err)
			default:
				cls = sinks.Retryable(err, after)
			}
		}
		return s.fail(cls, "%s: %s", code, msg)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.fail(sinks.Retryable(err, 0), "attempt timed out after %s (the delivery timeout)", sinks.AttemptTimeout(ctx, start))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return s.fail(sinks.Retryable(err, 0), "%v", ue.Err)
	}
	return s.fail(sinks.Retryable(err, 0), "%v", err)
}

// httpStatus is the HTTP status of a failed call, 0 if none.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// retryableCode: Lambda is busy, the function is not ready yet, or
// credentials and permissions are wrong (an operator can fix them without
// the events being lost).
func retryableCode(code string) bool {
	switch code {
	case "TooManyRequestsException", "ThrottlingException", "EC2ThrottledException", "EC2UnexpectedException",
		"EC2AccessDeniedException", "ENILimitReachedException", "ENINotReadyException", "ServiceException",
		"ResourceNotReadyException", "ResourceConflictException", "SubnetIPAddressLimitReachedException",
		"SnapStartNotReadyException", "SnapStartTimeoutException", "EFSMountTimeoutException",
		"EFSMountConnectivityException", "EFSIOException", "KMSAccessDeniedException", "KMSDisabledException",
		"KMSInvalidStateException", "KMSNotFoundException", "InternalFailure", "ServiceUnavailable",
		"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
		"ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationToken", "InvalidClientTokenId",
		"SignatureDoesNotMatch", "RequestExpired":
		return true
	}
	return false
}

// permanentCode: the function does not exist, or Lambda refuses the
// request itself; the same request cannot pass later.
func permanentCode(code string) bool {
	switch code {
	case "ResourceNotFoundException", "InvalidRequestContentException", "RequestTooLargeException",
		"InvalidParameterValueException", "UnsupportedMediaTypeException", "RecursiveInvocationException",
		"SerializedRequestEntityTooLargeException", "ValidationException":
		return true
	}
	return false
}

// fail returns an error that reads "lambda FUNCTION: msg" on one bounded
// line and unwraps to cls, which carries the classification.
func (s *Sink) fail(cls error, format string, args ...any) error {
	return &sinks.Failure{Msg: text.OneLine("lambda "+s.display+": "+fmt.Sprintf(format, args...), cehttp.MaxErrLen), Err: cls}
}

// Close closes the idle connections. No Deliver runs when Close is called.
func (s *Sink) Close() error {
	s.transport.CloseIdle()
	return nil
}
