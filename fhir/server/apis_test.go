package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir/server"
)

// extraAPI is an API beside the FHIR API (server.Config.APIs), answering
// in a format of its own: text/plain "extra <kind>: <message>".
type extraAPI struct{ lim server.APILimits }

func (*extraAPI) Prefix() string { return "/extra" }

func (a *extraAPI) Register(g *gin.RouterGroup) {
	ok := func(c *gin.Context) { c.String(http.StatusOK, "ok") }
	g.GET("/ok", ok)
	g.GET("/items/:a/:b/:c", ok) // five segments: no FHIR route has as many
	g.GET("/panic", func(*gin.Context) { panic("secret-internal-detail") })
	// silent returns without answering once the time limit passes.
	g.GET("/silent", func(c *gin.Context) { <-c.Request.Context().Done() })
	g.POST("/body", func(c *gin.Context) {
		b, _ := io.ReadAll(c.Request.Body)
		c.String(http.StatusOK, "%d", len(b))
	})
}

func (a *extraAPI) Limits() server.APILimits { return a.lim }

var extraStatus = map[server.FailureKind]int{
	server.FailNoRoute: 404, server.FailNoMethod: 405, server.FailBusy: 503,
	server.FailBodyTooLarge: 413, server.FailTimeout: 504, server.FailPanic: 500,
}

func (a *extraAPI) Fail(c *gin.Context, f server.Failure) {
	if f.Kind != server.FailNoMethod {
		c.Writer.Header().Del("Allow")
	}
	c.String(extraStatus[f.Kind], "extra %d: %s", f.Kind, f.Message)
}

// syncBuffer is a log destination the test reads while requests write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.b.String(), sub)
}

// accessLines counts the access-log lines of request id.
func (s *syncBuffer) accessLines(t *testing.T, id string) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "request" && m["request_id"] == id {
			n++
		}
	}
	return n
}

// TestAPIsBeside: an API beside the FHIR API owns the paths under its
// prefix (those without a "." or empty segment), gets its routes' answers
// and, in its own format, what the router and the shared middleware
// refuse there: no route, no method, a declared body over its own limit, a
// panic, its own time limit passing, the in-flight limit it shares with
// the FHIR API. Every request has one X-Request-Id and one access-log
// line, whichever API answered.
func TestAPIsBeside(t *testing.T) {
	logs := &syncBuffer{}
	// Limits long enough for a loaded machine (the test once failed at
	// load 15 with 100 ms): a request's slot may be released just after
	// its answer reaches the client, so the next one may queue briefly.
	extra := &extraAPI{lim: server.APILimits{MaxBodyBytes: 1 << 10, RequestTimeout: 500 * time.Millisecond}}
	srv, _ := newServer(t, server.Config{Store: newMemStore(t), APIs: []server.API{extra},
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Limits: server.Limits{MaxInFlight: 1, QueueWait: 500 * time.Millisecond}})

	padded := []byte(`{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 2<<10) + `"}]}`)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		fhir               bool   // answered as an OperationOutcome, else in extraAPI's format
		want               string // in the body
		allow              string
	}{
		{name: "route", method: "GET", path: "/extra/ok", status: 200, want: "ok"},
		{name: "no route", method: "GET", path: "/extra/nope", status: 404, want: fmt.Sprintf("extra %d", server.FailNoRoute)},
		{name: "no method", method: "PUT", path: "/extra/ok", status: 405, want: fmt.Sprintf("extra %d", server.FailNoMethod), allow: "GET"},
		// Gin falls back from the static "extra" to the FHIR routes'
		// parameters: the paths are still the extra API's.
		{name: "matches a FHIR read", method: "GET", path: "/extra/x", status: 404, want: fmt.Sprintf("extra %d", server.FailNoRoute)},
		{name: "matches a FHIR compartment", method: "GET", path: "/extra/x/y", status: 404, want: fmt.Sprintf("extra %d", server.FailNoRoute)},
		{name: "the prefix alone is the FHIR API's", method: "GET", path: "/extra", status: 404, fhir: true, want: `unknown resource type \"extra\"`},
		{name: "dot segment is the FHIR API's", method: "GET", path: "/extra/./ok", status: 404, fhir: true, want: `\".\" or`},
		{name: "empty segment is the FHIR API's", method: "GET", path: "/extra//ok", status: 404, fhir: true, want: "empty"},
		// Allow names the FHIR routes' methods only, as it would without
		// the extra API.
		{name: "dot segment matching a FHIR route", method: "PUT", path: "/extra/./ok", status: 404, fhir: true, want: `\".\" or`, allow: "GET, POST"}, // compartment search; $validate of an instance
		{name: "dot segment matching an extra route", method: "GET", path: "/extra/items/./y/z", status: 404, fhir: true, want: `\".\" or`},
		{name: "dot segment matching an extra route, no method", method: "DELETE", path: "/extra/items/./y/z", status: 404, fhir: true, want: `\".\" or`},
		{name: "panic", method: "GET", path: "/extra/panic", status: 500, want: "internal error (request id "},
		{name: "its own time limit", method: "GET", path: "/extra/silent", status: 504, want: fmt.Sprintf("extra %d", server.FailTimeout)},
		{name: "its own body limit", method: "POST", path: "/extra/body", body: padded, status: 413, want: fmt.Sprintf("extra %d", server.FailBodyTooLarge)},
		{name: "a body within it", method: "POST", path: "/extra/body", body: []byte("12345"), status: 200, want: "5"},
		{name: "the FHIR API's body limit", method: "POST", path: "/Patient", body: padded, status: 201, fhir: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("apis-%d", i)
			r := srv.do(tc.method, tc.path, tc.body, "X-Request-Id", id)
			checkAnswer(t, r, tc.status, tc.fhir, tc.want)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			checkOneID(t, r, logs, id)
		})
	}

	t.Run("busy", func(t *testing.T) {
		release := stall(t, srv, 1000)
		defer release()
		busyAnswer(t, srv, "GET", "/metadata", nil) // the stalled request holds the one place
		for i, tc := range []struct {
			path string
			fhir bool
		}{{"/extra/ok", false}, {"/metadata", true}} {
			id := fmt.Sprintf("busy-%d", i)
			r := srv.do("GET", tc.path, nil, "X-Request-Id", id)
			checkAnswer(t, r, 503, tc.fhir, "max-in-flight = 1")
			if r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			checkOneID(t, r, logs, id)
		}
	})
	if !logs.contains("secret-internal-detail") {
		t.Error("the panic is not in the log")
	}
}

// checkAnswer checks the status and the format of an answer (FHIR JSON,
// an OperationOutcome for an error; else the extra API's), and that its
// body holds want.
func checkAnswer(t *testing.T, r response, status int, fhir bool, want string) {
	t.Helper()
	switch {
	case fhir && status >= 400:
		assertOutcome(t, r, status)
	case fhir:
		if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/fhir+json") {
			t.Fatalf("%d %q, want %d FHIR JSON: %.300s", r.status, r.header.Get("Content-Type"), status, r.body)
		}
	default:
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q: not the extra API's answer: %s", ct, r.body)
		}
		if bytes.Contains(r.body, []byte("secret-internal-detail")) {
			t.Errorf("the panic reached the client: %s", r.body)
		}
	}
	if !bytes.Contains(r.body, []byte(want)) {
		t.Errorf("%q not in %s", want, r.body)
	}
}

// checkOneID checks that an answer carries the request's id once, and that
// the access log has one line for it.
func checkOneID(t *testing.T, r response, logs *syncBuffer, id string) {
	t.Helper()
	if ids := r.header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != id {
		t.Errorf("X-Request-Id %q, want [%s]", ids, id)
	}
	if n := logs.accessLines(t, id); n != 1 {
		t.Errorf("%d access-log lines for %s, want 1", n, id)
	}
}

// TestAPIPrefixChecked: a prefix that is not a path is a wiring mistake,
// found by New.
func TestAPIPrefixChecked(t *testing.T) {
	for _, p := range []string{"", "/", "extra", "/extra/", "/a//b", "/a/../b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("prefix %q accepted", p)
				}
			}()
			server.New(server.Config{Store: newMemStore(t), APIs: []server.API{prefixAPI(p)}})
		}()
	}
}

type prefixAPI string

func (p prefixAPI) Prefix() string                      { return string(p) }
func (prefixAPI) Register(*gin.RouterGroup)             {}
func (prefixAPI) Limits() server.APILimits              { return server.APILimits{} }
func (prefixAPI) Fail(c *gin.Context, _ server.Failure) {}
