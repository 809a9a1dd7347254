package practice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// trapStore is a store whose writes panic, or hang until their context
// ends, when told to.
type trapStore struct {
	search.Store
	recordStore
	trap atomic.Value // "", "panic" or "hang"
}

func (s *trapStore) Update(ctx context.Context, fn func(tx fhir.Tx) error) error {
	switch s.trap.Load() {
	case "panic":
		panic("trapStore: secret-internal-detail")
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.Update(ctx, fn)
}

// logLines is a log destination read while requests write to it.
type logLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many lines have msg and request id.
func (l *logLines) count(t *testing.T, msg, id string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg && m["request_id"] == id {
			n++
		}
	}
	return n
}

// TestSharedMiddleware: the practice API and the FHIR API are one router
// behind one middleware chain. A panic, an admission 503 (the in-flight
// limit they share) and the time limit (each API's own) are answered on a
// practice route in the practice API's JSON, with its codes, and on a FHIR
// route as OperationOutcomes; every answer carries one X-Request-Id, and
// the access log has one line for it.
func TestSharedMiddleware(t *testing.T) {
	base := openTestStore(t)
	st := &trapStore{Store: base.(search.Store), recordStore: base.(recordStore)}
	st.trap.Store("")
	logs := &logLines{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	const limit = 300 * time.Millisecond
	e := newGatewayEnv(t, st, testApplier(st), HTTPConfig{Logger: log, RequestTimeout: limit},
		server.Config{RequestTimeout: limit, Limits: server.Limits{MaxInFlight: 1, QueueWait: 100 * time.Millisecond}})
	addr := strings.TrimPrefix(e.url, "http://")
	record := readTestdata(t, "client.json")
	patient := []byte(`{"resourceType":"Patient","gender":"other"}`)

	// busy holds the one place among max-in-flight with a request whose
	// body stops halfway, until the returned function closes it.
	busy := func(t *testing.T) func() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{")
		for i := 0; ; i++ { // until it is admitted
			if a := e.do(t, http.MethodGet, "/metadata", "", nil, "X-Request-Id", fmt.Sprintf("probe-%d", i)); a.status == http.StatusServiceUnavailable {
				break
			}
			if i == 50 {
				t.Fatal("the stalled request never filled the server")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return func() { conn.Close() }
	}
	trap := func(what string) func(*testing.T) func() {
		return func(*testing.T) func() {
			st.trap.Store(what)
			return func() { st.trap.Store("") }
		}
	}

	for _, tc := range []struct {
		name  string
		setup func(*testing.T) func()
		// practice: the code of the practice API's answer; fhir: the
		// issue code of the OperationOutcome.
		status         int
		practice, fhir string
		fhirStatus     int
		want           string // in both answers
	}{
		{"panic", trap("panic"), 500, codeInternal, "exception", 500, "internal error (request id "},
		{"busy", busy, 503, codeBusy, "transient", 503, "max-in-flight = 1"},
		{"time limit", trap("hang"), 503, codeTimeout, "too-costly", 403, "time limit of 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := tc.setup(t)
			defer release()
			start := time.Now()
			id := "shared-" + strings.ReplaceAll(tc.name, " ", "-")

			a := e.post(t, "application/json", record, "X-Request-Id", id+"-practice")
			d := wantError(t, a, tc.status, tc.practice)
			if !strings.Contains(d.Error.Message, tc.want) {
				t.Errorf("practice: %q not in %q", tc.want, d.Error.Message)
			}
			checkShared(t, a, logs, id+"-practice", tc.status)

			a = e.do(t, http.MethodPost, "/Patient", "application/fhir+json", patient, "X-Request-Id", id+"-fhir")
			if ct := a.header.Get("Content-Type"); a.status != tc.fhirStatus || !strings.HasPrefix(ct, "application/fhir+json") {
				t.Fatalf("FHIR: %d %q, want %d FHIR JSON: %s", a.status, ct, tc.fhirStatus, a.body)
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Code, Diagnostics string }
			}
			if err := json.Unmarshal(a.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 ||
				oo.Issue[0].Code != tc.fhir || !strings.Contains(oo.Issue[0].Diagnostics, tc.want) {
				t.Errorf("FHIR: want an OperationOutcome %s naming %q: %s (%v)", tc.fhir, tc.want, a.body, err)
			}
			checkShared(t, a, logs, id+"-fhir", tc.fhirStatus)
			if took := time.Since(start); took > 2*limit+2*time.Second {
				t.Errorf("answered after %s", took)
			}
		})
	}
	if logs.count(t, "panic", "shared-panic-practice") != 1 {
		t.Error("the practice API's panic is not logged with its request id")
	}
}

// checkShared checks what the shared middleware gives every answer: one
// X-Request-Id, the one sent; one access-log line; no panic text; and
// Retry-After on a 503 busy.
func checkShared(t *testing.T, a answer, logs *logLines, id string, status int) {
	t.Helper()
	if ids := a.header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != id {
		t.Errorf("X-Request-Id %q, want [%s]", ids, id)
	}
	if n := logs.count(t, "request", id); n != 1 {
		t.Errorf("%d access-log lines for %s, want 1", n, id)
	}
	if bytes.Contains(a.body, []byte("secret-internal-detail")) {
		t.Errorf("the panic reached the client: %s", a.body)
	}
	if status == http.StatusServiceUnavailable && strings.Contains(string(a.body), "max-in-flight") && a.header.Get("Retry-After") == "" {
		t.Error("503 busy without Retry-After")
	}
}
