// Package all registers every sink type that ships with Junction.
package all

import (
	_ "github.com/junctionhq/junction/sinks/log"
	_ "github.com/junctionhq/junction/sinks/webhook"
)
