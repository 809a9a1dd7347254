package ehr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var observation = []byte(`{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:kap:obs","value":"o-1"}],"code":{"text":"heart rate"}}`)

func created(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Location", "http://"+r.Host+"/fhir/R4/Observation/42/_history/1")
	writeJSON(w, http.StatusCreated, map[string]any{"resourceType": "Observation", "id": "42"})
}

func okBundle(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "searchset", "total": 0})
}

// TestClient503Burst: a GET through a burst of 503s (the first with an
// OperationOutcome) succeeds once the server is back, each attempt with
// the bearer token.
func TestClient503Burst(t *testing.T) {
	tokens := newTokenServer(t)
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 3 {
			writeOutcome(w, http.StatusServiceUnavailable, "transient", "try later")
			return
		}
		okBundle(w)
	})
	c := testClient(t, fs, testSource(t, tokens, nil), nil)
	resp, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation?identifier=urn:kap:obs|o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Attempts != 4 || !strings.Contains(string(resp.Body), "searchset") {
		t.Fatalf("%d after %d attempts: %s", resp.Status, resp.Attempts, resp.Body)
	}
	hits := fs.seen()
	if len(hits) != 4 {
		t.Fatalf("%d requests, want 4", len(hits))
	}
	for _, h := range hits {
		if !strings.HasPrefix(h.auth, "Bearer ") || h.path != "/fhir/R4/Observation" || h.query != "identifier=urn:kap:obs|o-1" {
			t.Fatalf("request %+v", h)
		}
	}
	if tokens.count() != 1 {
		t.Fatalf("%d token requests, want 1 (the token is cached across retries)", tokens.count())
	}
}

// TestClient503Exhausted: after MaxRetries the final 503's
// OperationOutcome is kept with the error, which is temporary.
func TestClient503Exhausted(t *testing.T) {
	tokens := newTokenServer(t)
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		writeOutcome(w, http.StatusServiceUnavailable, "transient", fmt.Sprintf("attempt %d: database failover in progress", n))
	})
	c := testClient(t, fs, testSource(t, tokens, nil), func(c *Config) { c.Policy.MaxRetries = 2 })
	_, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Patient/p1"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T)", err, err)
	}
	if e.Status != 503 || e.Attempts != 3 || !e.Temporary || e.Outcome == nil || e.Outcome.Issues[0].Diagnostics != "attempt 3: database failover in progress" {
		t.Fatalf("%+v (outcome %+v)", e, e.Outcome)
	}
	if !strings.Contains(e.Stopped, "gave up after 3 attempts") || !strings.Contains(err.Error(), "OperationOutcome error/transient") {
		t.Fatalf("message %q", err)
	}
	if strings.Contains(err.Error(), "failover") {
		t.Fatalf("diagnostics (possibly PHI) in the error message: %q", err)
	}
}

// TestClient429RetryAfter: Retry-After in seconds and as an HTTP-date is
// waited for; one longer than MaxRetryAfter stops the retries at once and
// is reported.
func TestClient429RetryAfter(t *testing.T) {
	tokens := newTokenServer(t)
	for _, tc := range []struct {
		name  string
		value func() string
	}{
		{"seconds", func() string { return "1" }},
		{"HTTP-date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var at []time.Time
			fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
				at = append(at, time.Now())
				if n == 1 {
					w.Header().Set("Retry-After", tc.value())
					writeOutcome(w, http.StatusTooManyRequests, "throttled", "rate limited")
					return
				}
				okBundle(w)
			})
			c := testClient(t, fs, testSource(t, tokens, nil), nil)
			if _, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"}); err != nil {
				t.Fatal(err)
			}
			if len(at) != 2 || at[1].Sub(at[0]) < 900*time.Millisecond {
				t.Fatalf("retried after %s, before Retry-After", at[1].Sub(at[0]))
			}
		})
	}
	t.Run("over the cap", func(t *testing.T) {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Retry-After", "3600")
			writeOutcome(w, http.StatusTooManyRequests, "throttled", "come back in an hour")
		})
		c := testClient(t, fs, testSource(t, tokens, nil), func(c *Config) { c.Policy.MaxRetryAfter = 10 * time.Second })
		start := time.Now()
		_, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
		var e *Error
		if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != time.Hour || !e.Temporary || e.Attempts != 1 || time.Since(start) > 2*time.Second {
			t.Fatalf("%v: %+v", err, e)
		}
		if !strings.Contains(e.Stopped, "asked to wait 1h0m0s") {
			t.Fatalf("stopped: %q", e.Stopped)
		}
	})
}

// TestClientConnectionReset: a GET through two resets succeeds; a POST
// create is not repeated blindly: without a Landed check it fails after
// one attempt (ErrNotRetried), with one the check decides.
func TestClientConnectionReset(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, nil)
	ctx := ctxTimeout(t, 20*time.Second)

	t.Run("GET", func(t *testing.T) {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
			if n <= 2 {
				resetConn(w)
				return
			}
			okBundle(w)
		})
		resp, err := testClient(t, fs, src, nil).Do(ctx, &Request{Method: "GET", URL: "Observation"})
		if err != nil || resp.Attempts != 3 {
			t.Fatalf("%v, %+v", err, resp)
		}
	})

	t.Run("POST without a check", func(t *testing.T) {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { resetConn(w) })
		_, err := testClient(t, fs, src, nil).Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation})
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrNotRetried) || e.Status != 0 || !e.Temporary || e.Attempts != 1 {
			t.Fatalf("%v: %+v", err, e)
		}
		if n := len(fs.seen()); n != 1 {
			t.Fatalf("the create was sent %d times", n)
		}
	})

	t.Run("POST that landed", func(t *testing.T) {
		// The server stores the create, then the connection breaks before
		// the answer: the check finds it, and nothing is sent again.
		var stored atomic.Bool
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
			if r.Method == "POST" {
				stored.Store(true)
				resetConn(w)
				return
			}
			okBundle(w)
		})
		c := testClient(t, fs, src, nil)
		var checks int
		resp, err := c.Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation, Landed: func(ctx context.Context) (bool, error) {
			checks++
			if _, err := c.Do(ctx, &Request{Method: "GET", URL: "Observation?identifier=urn:kap:obs|o-1"}); err != nil {
				return false, err
			}
			return stored.Load(), nil
		}})
		if err != nil || !resp.Landed || checks != 1 {
			t.Fatalf("%v, %+v, %d checks", err, resp, checks)
		}
		var posts int
		for _, h := range fs.seen() {
			if h.method == "POST" {
				posts++
			}
		}
		if posts != 1 {
			t.Fatalf("%d POSTs, want 1", posts)
		}
	})

	t.Run("POST that did not land", func(t *testing.T) {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				resetConn(w) // before storing anything
				return
			}
			created(w, r)
		})
		c := testClient(t, fs, src, nil)
		resp, err := c.Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation,
			Landed: func(context.Context) (bool, error) { return false, nil }})
		if err != nil || resp.Landed || resp.Status != 201 || resp.Attempts != 2 {
			t.Fatalf("%v, %+v", err, resp)
		}
		if !strings.Contains(resp.Header.Get("Location"), "/Observation/42/") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
	})

	t.Run("POST whose check fails", func(t *testing.T) {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { resetConn(w) })
		_, err := testClient(t, fs, src, nil).Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation,
			Landed: func(context.Context) (bool, error) { return false, errors.New("search refused") }})
		if err == nil || !strings.Contains(err.Error(), "checking whether the failed POST landed: search refused") {
			t.Fatalf("%v", err)
		}
	})
}

// TestClientPOSTPolicy: a 503 to a plain POST is not repeated, one marked
// Idempotent (a search by POST) is; a POST that never left (the host did
// not resolve) is repeated whatever it is.
func TestClientPOSTPolicy(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, nil)
	ctx := ctxTimeout(t, 20*time.Second)
	burst := func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeOutcome(w, http.StatusServiceUnavailable, "transient", "busy")
			return
		}
		created(w, r)
	}
	fs := newFHIRServer(t, tokens, burst)
	_, err := testClient(t, fs, src, nil).Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation})
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || !errors.Is(err, ErrNotRetried) || e.Outcome == nil || len(fs.seen()) != 1 {
		t.Fatalf("plain POST: %v", err)
	}

	fs2 := newFHIRServer(t, tokens, burst)
	if resp, err := testClient(t, fs2, src, nil).Do(ctx, &Request{Method: "POST", URL: "Observation/_search", Body: []byte("code=8867-4"),
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Idempotent: true}); err != nil || resp.Attempts != 2 {
		t.Fatalf("idempotent POST: %v", err)
	}

	fs3 := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { created(w, r) })
	dns := &dialFailures{next: noKeepAlive, n: 2}
	resp, err := testClient(t, fs3, src, func(c *Config) { c.Transport = dns }).Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation})
	if err != nil || resp.Status != 201 || resp.Attempts != 3 || len(fs3.seen()) != 1 {
		t.Fatalf("POST after DNS failures: %v, %+v, %d requests", err, resp, len(fs3.seen()))
	}
}

// TestClientTimeout: an attempt that takes longer than AttemptTimeout is
// abandoned and retried.
func TestClientTimeout(t *testing.T) {
	tokens := newTokenServer(t)
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		okBundle(w)
	})
	c := testClient(t, fs, testSource(t, tokens, nil), func(c *Config) { c.Policy.AttemptTimeout = 300 * time.Millisecond })
	start := time.Now()
	resp, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 2 {
		t.Fatalf("%v, %+v", err, resp)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}

	// Every attempt timing out: a temporary error, not the caller's
	// deadline.
	slow := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
	c2 := testClient(t, slow, testSource(t, tokens, nil), func(c *Config) {
		c.Policy.AttemptTimeout, c.Policy.MaxRetries = 100*time.Millisecond, 1
	})
	_, err = c2.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Attempts != 2 || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("%v: %+v", err, e)
	}
	// The caller's own deadline ends it, not temporary.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	c3 := testClient(t, slow, testSource(t, tokens, nil), func(c *Config) { c.Policy.AttemptTimeout = time.Second })
	_, err = c3.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if !errors.As(err, &e) || e.Temporary || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v (%+v)", err, e)
	}
}

// TestClient401RefreshOnce: a token the server stopped accepting is
// replaced once; a server that refuses every token gets exactly two
// attempts and a clear error.
func TestClient401RefreshOnce(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { created(w, r) })
	c := testClient(t, fs, src, nil)
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: "metadata"}); err != nil {
		t.Fatal(err)
	}
	tokens.revokeAll() // the EHR forgets its tokens (a restart, a revocation)
	// Even a create goes again after a 401: it was not carried out.
	resp, err := c.Do(ctx, &Request{Method: "POST", URL: "Observation", Body: observation})
	if err != nil || resp.Status != 201 || resp.Attempts != 2 || tokens.count() != 2 {
		t.Fatalf("%v, %+v, %d token requests", err, resp, tokens.count())
	}
	hits := fs.seen()
	if last, prev := hits[len(hits)-1], hits[len(hits)-2]; last.auth == prev.auth || last.method != "POST" || prev.method != "POST" {
		t.Fatalf("the retry did not carry a new token: %+v / %+v", prev, last)
	}

	never := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		writeOutcome(w, http.StatusUnauthorized, "security", "this client is not authorized here")
	})
	before := tokens.count()
	_, err = testClient(t, never, src, nil).Do(ctx, &Request{Method: "GET", URL: "Patient/p1"})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnauthorized) || e.Status != 401 || e.Attempts != 2 || e.Temporary {
		t.Fatalf("%v: %+v", err, e)
	}
	if got := tokens.count() - before; got != 1 {
		t.Fatalf("%d token requests for the refresh, want 1", got)
	}
	if len(never.seen()) != 2 {
		t.Fatalf("%d requests, want 2", len(never.seen()))
	}
}

// TestClientExpiredTokenRefreshed: a cached token past its renewal time is
// replaced before the request goes out.
func TestClientExpiredTokenRefreshed(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.lifetime = 2 * time.Second
	src := testSource(t, tokens, func(c *TokenConfig) { c.Skew = 500 * time.Millisecond })
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { okBundle(w) })
	c := testClient(t, fs, src, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: "Observation"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the server now refuses the first token
	resp, err := c.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 1 || tokens.count() != 2 {
		t.Fatalf("%v, %+v, %d token requests", err, resp, tokens.count())
	}
}

// TestClientFailingTokenEndpoint: no token, no FHIR request; the error
// says where the token could not be had.
func TestClientFailingTokenEndpoint(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return true
	}
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { okBundle(w) })
	_, err := testClient(t, fs, testSource(t, tokens, nil), nil).Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTokenEndpoint) || !e.Temporary || e.Attempts != 0 {
		t.Fatalf("%v: %+v", err, e)
	}
	if !strings.Contains(err.Error(), "no access token from "+tokens.url()+": 502 Bad Gateway (5 attempts)") {
		t.Fatalf("message %q", err)
	}
	if len(fs.seen()) != 0 {
		t.Fatalf("the FHIR server saw %d requests without a token", len(fs.seen()))
	}
}

// TestClientTokenStaysHome: the bearer token goes only to the FHIR base's
// origin: not to an absolute next link or Location elsewhere, not across a
// redirect to another host or port.
func TestClientTokenStaysHome(t *testing.T) {
	tokens := newTokenServer(t)
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = append(elsewhere, r.Header.Get("Authorization"))
		okBundle(w)
	}))
	defer other.Close()
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/fhir/R4/Observation":
			writeJSON(w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "searchset",
				"link": []any{map[string]any{"relation": "next", "url": other.URL + "/page2?_getpages=abc"}}})
		case "/fhir/R4/Binary/1":
			http.Redirect(w, r, other.URL+"/blob/1", http.StatusFound)
		case "/fhir/R4/page2":
			okBundle(w)
		}
	})
	c := testClient(t, fs, testSource(t, tokens, nil), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	resp, err := c.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	next := NextLink(b)
	if !strings.HasPrefix(next, other.URL) {
		t.Fatalf("next %q", next)
	}
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: next}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: "Binary/1"}); err != nil {
		t.Fatal(err)
	}
	// A next link on the base's own origin does get the token.
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: fs.srv.URL + "/fhir/R4/page2?_getpages=abc"}); err != nil {
		t.Fatal(err)
	}
	if len(elsewhere) != 2 || elsewhere[0] != "" || elsewhere[1] != "" {
		t.Fatalf("requests elsewhere carried %q", elsewhere)
	}
	hits := fs.seen()
	if last := hits[len(hits)-1]; last.path != "/fhir/R4/page2" || !strings.HasPrefix(last.auth, "Bearer ") {
		t.Fatalf("same-origin next link: %+v", last)
	}
	// The guard itself: a request to another port of the same host loses
	// the header, whatever put it there.
	var got string
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Authorization") }))
	defer probe.Close()
	req, _ := http.NewRequest("GET", probe.URL, nil)
	req.Header.Set("Authorization", "Bearer leaked")
	if _, err := c.http.Do(req); err != nil || got != "" {
		t.Fatalf("guard let %q through (%v)", got, err)
	}
}

// TestClientStatusPolicy: 501 and 4xx are not retried; an error body that
// is not FHIR is kept as it is.
func TestClientStatusPolicy(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, nil)
	for _, status := range []int{400, 404, 409, 412, 422, 501} {
		fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
			writeOutcome(w, status, "processing", "no")
		})
		_, err := testClient(t, fs, src, nil).Do(ctxTimeout(t, 10*time.Second), &Request{Method: "PUT", URL: "Observation/1", Body: observation})
		var e *Error
		if !errors.As(err, &e) || e.Status != status || e.Attempts != 1 || e.Temporary || len(fs.seen()) != 1 {
			t.Errorf("%d: %v: %+v", status, err, e)
		}
	}
	html := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, "<html>Bad request</html>")
	})
	_, err := testClient(t, html, src, nil).Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
	var e *Error
	if !errors.As(err, &e) || e.Outcome != nil || string(e.Body) != "<html>Bad request</html>" || e.ContentType != "text/html" {
		t.Fatalf("%v: %+v", err, e)
	}
}

// TestClientBodies: a successful body over MaxResponseBytes is refused;
// an error body is capped at 64 KiB.
func TestClientBodies(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, nil)
	big := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/fhir/R4/Observation" {
			w.Write([]byte(strings.Repeat("x", 2000)))
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(strings.Repeat("y", 1<<20)))
	})
	c := testClient(t, big, src, func(c *Config) { c.MaxResponseBytes = 1000 })
	_, err := c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Observation"})
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("%v", err)
	}
	_, err = c.Do(ctxTimeout(t, 10*time.Second), &Request{Method: "GET", URL: "Patient"})
	var e *Error
	if !errors.As(err, &e) || len(e.Body) != 64<<10 {
		t.Fatalf("%v: body %d bytes", err, len(e.Body))
	}
}

// TestClientLogs: the log shows method, host, path, status and ids, and
// never the token, the query string or a body.
func TestClientLogs(t *testing.T) {
	tokens := newTokenServer(t)
	var logs logBuffer
	logger := newJSONLogger(&logs)
	src := testSource(t, tokens, func(c *TokenConfig) { c.Logger = logger })
	fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeOutcome(w, http.StatusServiceUnavailable, "transient", "patient Jane Doe MRN-555 could not be loaded")
			return
		}
		if r.Method == "POST" {
			writeOutcome(w, http.StatusUnprocessableEntity, "invariant", "Observation for Jane Doe is invalid")
			return
		}
		okBundle(w)
	})
	c := testClient(t, fs, src, func(c *Config) { c.Logger = logger })
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Do(ctx, &Request{Method: "GET", URL: "Patient?identifier=urn:mrn|MRN-555&name=Jane", LogID: "outbox-17"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(ctx, &Request{Method: "POST", URL: "Observation?x=MRN-555", Body: []byte(`{"resourceType":"Observation","subject":{"display":"Jane Doe"}}`)})
	if err == nil {
		t.Fatal("no error")
	}
	tok, _ := src.Token(ctx)
	out := logs.String()
	for _, secret := range []string{tok.AccessToken, "MRN-555", "Jane", "identifier", "client_assertion", "eyJ"} {
		if strings.Contains(out, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q appears in the logs or the error:\n%s\n%v", secret, out, err)
		}
	}
	for _, want := range []string{`"msg":"ehr retry"`, `"path":"/fhir/R4/Patient"`, `"id":"outbox-17"`, `"msg":"ehr request failed"`,
		`"status":422`, `"outcome":"error/invariant"`, `"msg":"smart token"`, `"reason":"status 503"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestNewClientChecks(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"fhir.example/R4", "absolute"},
		{"ftp://fhir.example/R4", "absolute"},
		{"http://fhir.example/R4", "plain http"},
		{"https://user:pw@fhir.example/R4", "user info"},
		{"https://fhir.example/R4?x=1", "no query"},
	} {
		if _, err := NewClient(Config{BaseURL: tc.base}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.base, err, tc.want)
		}
	}
	for _, base := range []string{"http://127.0.0.1:8080/fhir", "http://localhost/fhir", "http://[::1]:9/", "https://fhir.example/R4/"} {
		if _, err := NewClient(Config{BaseURL: base}); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
	c, _ := NewClient(Config{BaseURL: "https://fhir.example/api/FHIR/R4/"})
	for ref, want := range map[string]string{
		"Observation/1":                 "https://fhir.example/api/FHIR/R4/Observation/1",
		"/Observation?code=a|b":         "https://fhir.example/api/FHIR/R4/Observation?code=a|b",
		"metadata":                      "https://fhir.example/api/FHIR/R4/metadata",
		"https://other.example/x?y=1":   "https://other.example/x?y=1",
		"Patient/p1/$everything?_count": "https://fhir.example/api/FHIR/R4/Patient/p1/$everything?_count",
	} {
		u, err := c.resolve(ref)
		if err != nil || u.String() != want {
			t.Errorf("resolve(%q) = %v, %v; want %s", ref, u, err, want)
		}
	}
	for _, ref := range []string{"//evil.example/x", "javascript:alert(1)", "%zz"} {
		if u, err := c.resolve(ref); err == nil {
			t.Errorf("resolve(%q) = %v", ref, u)
		}
	}
}
