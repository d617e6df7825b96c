package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// clientFlags are the flags every client of the admin API takes: where the
// API is, how to authenticate, and whether to print JSON.
type clientFlags struct {
	admin   *string
	config  *string
	token   *string
	json    *bool
	timeout *time.Duration
}

// addClientFlags registers --admin, -c/--config, --token, --json and
// --timeout on fs.
func addClientFlags(fs *flag.FlagSet) *clientFlags {
	return &clientFlags{
		admin:   fs.String("admin", "", "the admin API's `URL` (default: admin.listen of the config, else http://127.0.0.1:9090)"),
		config:  configFlag(fs, "the config `FILE` whose admin.listen to ask (default: ./junction.yaml if present, else the built-in default)"),
		token:   fs.String("token", "", "a bearer `TOKEN` for admin.auth (default: $JUNCTION_ADMIN_TOKEN)"),
		json:    fs.Bool("json", false, "print one JSON document instead of a table"),
		timeout: fs.Duration("timeout", 30*time.Second, "how long to wait for the answer"),
	}
}

// adminClient calls the admin API of a running junction.
type adminClient struct {
	base  string // http://host:port, no trailing slash
	token string
	http  *http.Client
}

// client resolves the admin URL (--admin, else the config's admin.listen)
// and the token (--token, else $JUNCTION_ADMIN_TOKEN).
func (f *clientFlags) client() (*adminClient, error) {
	base := *f.admin
	if base == "" {
		var err error
		if base, err = adminURL(*f.config); err != nil {
			return nil, err
		}
	} else if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	token := *f.token
	if token == "" {
		token = os.Getenv("JUNCTION_ADMIN_TOKEN")
	}
	return &adminClient{
		base:  strings.TrimRight(base, "/"),
		token: token,
		// Straight to the admin API, never through an HTTP_PROXY.
		http: &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: adminRoots(*f.config)}}},
	}, nil
}

// apiError is an answer of the admin API other than 2xx.
type apiError struct {
	Status  int
	Message string // the "error" of the JSON body, else the body's first line
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// call sends in (JSON, when not nil) with method to path and decodes a 2xx
// answer into out (when not nil). It returns the raw body too, for --json.
// An answer other than 2xx is an *apiError.
func (c *adminClient) call(ctx context.Context, method, path string, in, out any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &msg) == nil && msg.Error != "" {
			e.Message = msg.Error
		} else {
			e.Message = joinLines(string(raw))
		}
		return raw, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("%s %s: answer is not the JSON expected: %w", method, path, err)
		}
	}
	return raw, nil
}

// clientError prints "junction CMD: err" on stderr and returns exit 1. For
// an answer of the API it prints the body's lines too (422 of reload).
func clientError(stderr io.Writer, cmd string, err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		fmt.Fprintf(stderr, "junction %s: %d %s\n", cmd, ae.Status, http.StatusText(ae.Status))
		for _, l := range strings.Split(strings.TrimSpace(ae.Message), "\n") {
			fmt.Fprintln(stderr, l)
		}
		return 1
	}
	fmt.Fprintf(stderr, "junction %s: %s\n", cmd, joinLines(err.Error()))
	return 1
}

// printJSON writes raw as one indented JSON document and a newline.
func printJSON(w io.Writer, raw json.RawMessage) {
	raw = bytes.TrimSpace(raw)
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		w.Write(raw)
		fmt.Fprintln(w)
		return
	}
	buf.WriteByte('\n')
	w.Write(buf.Bytes())
}

// printTable writes rows under header, columns aligned, for people.
func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}
