package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/junctionhq/junction/router"
)

// schemaCmd prints the JSON Schema of the config (see router.ConfigSchema).
func schemaCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("schema")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "schema", fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	s, err := router.ConfigSchema()
	if err != nil {
		fmt.Fprintf(stderr, "junction schema: %v\n", err)
		return 1
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "junction schema: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}
