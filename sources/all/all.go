// Package all registers every source type that ships with Junction.
package all

import (
	_ "github.com/junctionhq/junction/sources/amqp"
	_ "github.com/junctionhq/junction/sources/http"
	_ "github.com/junctionhq/junction/sources/nats"
	_ "github.com/junctionhq/junction/sources/s3"
	_ "github.com/junctionhq/junction/sources/schedule"
	_ "github.com/junctionhq/junction/sources/sqs"
	_ "github.com/junctionhq/junction/sources/webhook"
)
