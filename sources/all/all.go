// Package all registers every source type that ships with Junction.
package all

import (
	_ "github.com/junctionhq/junction/sources/http"
	_ "github.com/junctionhq/junction/sources/webhook"
)
