// Package all registers every sink type that ships with Junction.
package all

import (
	_ "github.com/junctionhq/junction/sinks/amqp"
	_ "github.com/junctionhq/junction/sinks/function"
	_ "github.com/junctionhq/junction/sinks/lambda"
	_ "github.com/junctionhq/junction/sinks/log"
	_ "github.com/junctionhq/junction/sinks/nats"
	_ "github.com/junctionhq/junction/sinks/sqs"
	_ "github.com/junctionhq/junction/sinks/webhook"
)
