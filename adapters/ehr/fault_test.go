package ehr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/faultproxy"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// The connector's HTTP rules tested against the real sandbox (kapbridge
// acting as an EHR: its FHIR API on a memory store, its SMART token
// endpoint) with faultproxy between them: every request of the client,
// token requests included, crosses the proxy, which injects the faults.
// Unlike client_test.go's scripted servers, the server here really stores
// what reaches it, so "exactly once" is counted on the EHR itself.

// faultEnv is a sandbox behind a fault proxy, and a client of it.
type faultEnv struct {
	proxy  *faultproxy.Proxy
	tokens *TokenSource
	client *Client
}

const faultPolicyMax = 3

func newFaultEnv(t *testing.T, profile string, policy RetryPolicy) *faultEnv {
	t.Helper()
	keys(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	proxy, err := faultproxy.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	everything, _ := smart.ParseScopes("system/*.cruds")
	// The sandbox's public base is the proxy: its SMART configuration
	// names the token URL there, and the assertions' aud must match it.
	h, err = NewSandbox(SandboxConfig{Profile: profile, BaseURL: proxy.URL, Logger: discard,
		Clients: smart.Clients{testClientID: {ID: testClientID, JWKS: ecKey.PublicJWKS(), Scopes: everything}}})
	if err != nil {
		t.Fatal(err)
	}
	env := &faultEnv{proxy: proxy}
	env.tokens, err = NewTokenSource(TokenConfig{FHIRBase: proxy.URL, ClientID: testClientID, Key: ecKey,
		Scope: "system/Observation.cruds system/Patient.rs", Policy: policy, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	env.client, err = NewClient(Config{BaseURL: proxy.URL, Tokens: env.tokens, Policy: policy, Logger: discard,
		Transport: &http.Transport{DisableKeepAlives: true}})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func faultPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: faultPolicyMax, MinWait: 20 * time.Millisecond, MaxWait: 80 * time.Millisecond,
		MaxRetryAfter: 2 * time.Second, AttemptTimeout: 400 * time.Millisecond}
}

func faultObservation(id string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:kapbridge:fault","value":%q}],"code":{"text":"heart rate"},"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, id)
}

// count is how many Observations the sandbox holds with the identifier,
// asked without the proxy's faults (they are cleared first).
func (e *faultEnv) count(t *testing.T, id string) int {
	t.Helper()
	resp, err := e.client.Do(t.Context(), &Request{Method: http.MethodGet, URL: "Observation?identifier=urn:kapbridge:fault|" + id})
	if err != nil {
		t.Fatalf("counting %s: %v", id, err)
	}
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(resp.Body, &b); err != nil {
		t.Fatal(err)
	}
	return len(b.Entry)
}

// landedCheck is the check an outbound writer gives a create: a search by
// the resource's identifier.
func (e *faultEnv) landedCheck(t *testing.T, id string, checks *int) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		*checks++
		resp, err := e.client.Do(ctx, &Request{Method: http.MethodGet, URL: "Observation?identifier=urn:kapbridge:fault|" + id})
		if err != nil {
			return false, err
		}
		b, err := ParseBundle(resp.Body)
		if err != nil {
			return false, err
		}
		return len(b.Entry) > 0, nil
	}
}

func fhirRequests(s faultproxy.Seen) bool {
	return !strings.HasPrefix(s.Path, SandboxTokenPath) && !strings.HasPrefix(s.Path, smartConfigPath)
}

// TestFault503Burst: a burst shorter than the retries is ridden out; a
// longer one ends after exactly 1+MaxRetries attempts with the EHR's last
// OperationOutcome kept; no wait between attempts exceeds MaxWait.
func TestFault503Burst(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	outcome := faultproxy.Outcome("transient", "the EHR is restarting")
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Times: 2, Status: 503, Body: outcome})
	resp, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 3 || resp.Status != 200 {
		t.Fatalf("burst of 2: %v %+v", err, resp)
	}

	env.proxy.ResetSeen()
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Times: faultproxy.Always, Status: 503,
		Header: http.Header{"Content-Type": {"application/fhir+json"}}, Body: faultproxy.Outcome("transient", "still restarting")})
	start := time.Now()
	_, err = env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	took := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Attempts != 1+faultPolicyMax || !e.Temporary || e.Stopped == "" {
		t.Fatalf("endless burst: %v %+v", err, e)
	}
	if e.Outcome == nil || !strings.Contains(e.Outcome.Text(), "still restarting") {
		t.Fatalf("the final OperationOutcome is lost: %+v / %s", e.Outcome, e.Body)
	}
	seen := env.proxy.Seen(fhirRequests)
	if len(seen) != 1+faultPolicyMax {
		t.Fatalf("the proxy saw %d FHIR requests, want %d", len(seen), 1+faultPolicyMax)
	}
	for i := 1; i < len(seen); i++ {
		if gap := seen[i].At.Sub(seen[i-1].At); gap > faultPolicy().MaxWait+250*time.Millisecond {
			t.Errorf("wait before attempt %d: %s, over the cap %s", i+1, gap, faultPolicy().MaxWait)
		}
	}
	// Three waits of at most MaxWait each, plus the requests.
	if took > 3*faultPolicy().MaxWait+2*time.Second {
		t.Errorf("gave up after %s", took)
	}
}

// TestFault429RetryAfter: the server's Retry-After is waited for (not the
// shorter backoff); one longer than the cap is not waited for at all, and
// the error says how long the server asked for.
func TestFault429RetryAfter(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Status: 429,
		Header: http.Header{"Retry-After": {"1"}}, Body: faultproxy.Outcome("throttled", "slow down")})
	resp, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 2 {
		t.Fatalf("%v %+v", err, resp)
	}
	seen := env.proxy.Seen(fhirRequests)
	if gap := seen[len(seen)-1].At.Sub(seen[len(seen)-2].At); gap < 950*time.Millisecond {
		t.Fatalf("retried %s after a Retry-After of 1 s", gap)
	}

	env.proxy.ResetSeen()
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Status: 429,
		Header: http.Header{"Retry-After": {"3600"}}, Body: faultproxy.Outcome("throttled", "come back in an hour")})
	start := time.Now()
	_, err = env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.Attempts != 1 || e.RetryAfter != time.Hour || !e.Temporary || !strings.Contains(e.Stopped, "Retry-After") {
		t.Fatalf("%v %+v", err, e)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("waited %s for a Retry-After over the cap", time.Since(start))
	}
	if e.Outcome == nil || !strings.Contains(e.Outcome.Text(), "come back in an hour") {
		t.Fatalf("outcome lost: %s", e.Body)
	}
}

// TestFaultTimeout: an answer that does not come within AttemptTimeout is
// a retried network error for a read; the attempt is abandoned, not
// waited out.
func TestFaultTimeout(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Times: 2, Delay: 5 * time.Second})
	start := time.Now()
	resp, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 3 {
		t.Fatalf("%v %+v", err, resp)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %s: the 5 s holds were waited out", took)
	}
}

// TestFaultConnectionReset: reads go through resets; the token request
// too (a new assertion each time, which the sandbox accepts since its jti
// is new).
func TestFaultConnectionReset(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	env.proxy.Inject(
		faultproxy.Fault{Match: faultproxy.Path(SandboxTokenPath), Reset: true},
		faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Times: 2, Reset: true},
	)
	resp, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 3 {
		t.Fatalf("%v %+v", err, resp)
	}
	if n := len(env.proxy.Seen(faultproxy.PathOf(SandboxTokenPath))); n != 2 {
		t.Fatalf("%d token requests, want 2 (one reset)", n)
	}
}

// TestFaultCreateOnce: a create is never blindly repeated. The sandbox
// stores it and the answer is lost (a reset or a timeout after the server
// acted): with the identifier check, the client finds it landed and sends
// nothing again; without one, it stops (ErrNotRetried). A create lost
// before it reached the server is sent again after the check finds
// nothing. In every case the EHR holds exactly one.
func TestFaultCreateOnce(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 30*time.Second)
	post := faultproxy.Method("POST", "/Observation")
	posts := func() int { return len(env.proxy.Seen(faultproxy.MethodOf("POST", "/Observation"))) }

	cases := []struct {
		name      string
		fault     faultproxy.Fault
		check     bool
		wantPosts int
		landed    bool
		notRetry  bool
	}{
		{"reset after the server acted, checked", faultproxy.Fault{Match: post, After: true, Reset: true}, true, 1, true, false},
		{"timeout after the server acted, checked", faultproxy.Fault{Match: post, After: true, Delay: 3 * time.Second}, true, 1, true, false},
		{"503 after the server acted, checked", faultproxy.Fault{Match: post, After: true, Status: 503}, true, 1, true, false},
		{"reset after the server acted, unchecked", faultproxy.Fault{Match: post, After: true, Reset: true}, false, 1, false, true},
		{"reset before the server, checked", faultproxy.Fault{Match: post, Reset: true}, true, 2, false, false},
		{"503 before the server, checked", faultproxy.Fault{Match: post, Times: 2, Status: 503}, true, 3, false, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env.proxy.Clear()
			env.proxy.ResetSeen()
			id := fmt.Sprintf("create-%d", i)
			env.proxy.Inject(tc.fault)
			var checks int
			req := &Request{Method: "POST", URL: "Observation", Body: faultObservation(id)}
			if tc.check {
				req.Landed = env.landedCheck(t, id, &checks)
			}
			resp, err := env.client.Do(ctx, req)
			switch {
			case tc.notRetry:
				if !errors.Is(err, ErrNotRetried) {
					t.Fatalf("%v %+v", err, resp)
				}
			case err != nil:
				t.Fatal(err)
			case resp.Landed != tc.landed || (!tc.landed && resp.Status != 201):
				t.Fatalf("landed %v status %d, want landed %v", resp.Landed, resp.Status, tc.landed)
			}
			if got := posts(); got != tc.wantPosts {
				t.Errorf("%d POSTs reached the proxy, want %d", got, tc.wantPosts)
			}
			if tc.check && checks == 0 {
				t.Error("the identifier check never ran")
			}
			env.proxy.Clear()
			if n := env.count(t, id); n != 1 {
				t.Fatalf("the EHR holds %d Observations with the identifier, want exactly 1", n)
			}
		})
	}
}

// TestFaultTokenEndpoint: a token endpoint failing for a while is ridden
// out; one that keeps failing sends no FHIR request at all, and the error
// names the token endpoint and keeps its status; an OAuth refusal is not
// retried.
func TestFaultTokenEndpoint(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	t.Run("burst", func(t *testing.T) {
		env := newFaultEnv(t, "full", faultPolicy())
		env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Path(SandboxTokenPath), Times: 2, Status: 503})
		if _, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"}); err != nil {
			t.Fatal(err)
		}
		if n := len(env.proxy.Seen(faultproxy.PathOf(SandboxTokenPath))); n != 3 {
			t.Fatalf("%d token requests, want 3", n)
		}
	})
	t.Run("down", func(t *testing.T) {
		env := newFaultEnv(t, "full", faultPolicy())
		env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Path(SandboxTokenPath), Times: faultproxy.Always, Status: 500})
		_, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
		var te *TokenError
		if !errors.Is(err, ErrTokenEndpoint) || !errors.As(err, &te) || te.Status != 500 || !te.Temporary || te.Attempts != 1+faultPolicyMax {
			t.Fatalf("%v %+v", err, te)
		}
		if n := len(env.proxy.Seen(fhirRequests)); n != 0 {
			t.Fatalf("%d FHIR requests went out without a token", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		env := newFaultEnv(t, "full", faultPolicy())
		env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Path(SandboxTokenPath), Times: faultproxy.Always, Status: 401,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: `{"error":"invalid_client","error_description":"unknown key"}`})
		_, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
		var te *TokenError
		if !errors.As(err, &te) || te.Temporary || te.Attempts != 1 || te.OAuth == nil || te.OAuth.Code != "invalid_client" {
			t.Fatalf("%v %+v", err, te)
		}
	})
}

// TestFaultTokens: an expired cached token is replaced before the request
// (the clock moved past its expiry); a 401 (the EHR dropped the token) is
// answered by one fresh token and one retry, even of a create; a server
// refusing every token gets exactly two attempts.
func TestFaultTokens(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	tokenRequests := func() int { return len(env.proxy.Seen(faultproxy.PathOf(SandboxTokenPath))) }
	// The first token is said to last 2 s (the sandbox's answer rewritten):
	// the source renews it from 1 s on (half its life).
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Path(SandboxTokenPath), After: true,
		Rewrite: func(status int, _ http.Header, body []byte) (int, []byte) {
			var m map[string]any
			if json.Unmarshal(body, &m) != nil {
				t.Errorf("token response %d %s", status, body)
				return status, body
			}
			m["expires_in"] = 2
			b, _ := json.Marshal(m)
			return status, b
		}})
	if _, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"}); err != nil || tokenRequests() != 1 {
		t.Fatalf("the cached token was not reused: %v, %d token requests", err, tokenRequests())
	}
	time.Sleep(1100 * time.Millisecond)
	resp, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"})
	if err != nil || resp.Attempts != 1 || tokenRequests() != 2 {
		t.Fatalf("expired token: %v %+v, %d token requests", err, resp, tokenRequests())
	}

	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("POST", "/Observation"), Status: 401,
		Header: http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}, Body: faultproxy.Outcome("login", "token revoked")})
	resp, err = env.client.Do(ctx, &Request{Method: "POST", URL: "Observation", Body: faultObservation("after-401")})
	if err != nil || resp.Status != 201 || resp.Attempts != 2 || tokenRequests() != 3 {
		t.Fatalf("401 once: %v %+v, %d token requests", err, resp, tokenRequests())
	}
	env.proxy.Clear()
	if n := env.count(t, "after-401"); n != 1 {
		t.Fatalf("%d copies after the 401 retry", n)
	}

	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Patient"), Times: faultproxy.Always, Status: 401, Body: faultproxy.Outcome("login", "not for you")})
	before := len(env.proxy.Seen(faultproxy.PathOf("/Patient")))
	_, err = env.client.Do(ctx, &Request{Method: "GET", URL: "Patient"})
	var e *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || e.Attempts != 2 || e.Temporary {
		t.Fatalf("%v %+v", err, e)
	}
	if n := len(env.proxy.Seen(faultproxy.PathOf("/Patient"))) - before; n != 2 {
		t.Fatalf("%d attempts on a server refusing every token, want 2", n)
	}
}

// TestFaultTokenStaysHome: the EHR redirects to another host, or a
// Bundle's link points at one: the bearer token does not go along.
func TestFaultTokenStaysHome(t *testing.T) {
	env := newFaultEnv(t, "full", faultPolicy())
	ctx := ctxTimeout(t, 20*time.Second)
	var mu sync.Mutex
	var auths []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		okBundle(w)
	}))
	defer other.Close()
	env.proxy.Inject(faultproxy.Fault{Match: faultproxy.Method("GET", "/Observation"), Status: http.StatusFound,
		Header: http.Header{"Location": {other.URL + "/Observation"}}})
	if _, err := env.client.Do(ctx, &Request{Method: "GET", URL: "Observation"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.Do(ctx, &Request{Method: "GET", URL: other.URL + "/Observation?_page=2"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) != 2 {
		t.Fatalf("the other host saw %d requests, want 2", len(auths))
	}
	for i, a := range auths {
		if a != "" {
			t.Errorf("request %d to the other host carried Authorization %.12q...", i, a)
		}
	}
	if s := env.proxy.Seen(fhirRequests); len(s) == 0 || !s[0].Bearer {
		t.Fatalf("the EHR itself got no token: %+v", s)
	}
}

// TestFault412Race: another writer updates the resource between our read
// and our version-aware update: the sandbox answers 412, which is not
// retried and comes back with its OperationOutcome; re-reading gives the
// version to write against.
func TestFault412Race(t *testing.T) {
	// No fault here is a timeout: a longer attempt limit than the other
	// fault tests' keeps a slow answer on a loaded machine from being
	// taken for one and retried (it once was, at load 15).
	pol := faultPolicy()
	pol.AttemptTimeout = 5 * time.Second
	env := newFaultEnv(t, "epic", pol)
	ctx := ctxTimeout(t, 20*time.Second)
	resp, err := env.client.Do(ctx, &Request{Method: "POST", URL: "Observation", Body: faultObservation("race")})
	if err != nil || resp.Status != 201 {
		t.Fatalf("%v %+v", err, resp)
	}
	var created struct {
		ID   string `json:"id"`
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(resp.Body, &created); err != nil || created.ID == "" {
		loc := resp.Header.Get("Location")
		t.Fatalf("no id in the create's answer (%v), Location %q", err, loc)
	}
	path := "Observation/" + created.ID
	update := func(version string, value int) (*Response, error) {
		body := strings.Replace(string(faultObservation("race")), `"resourceType":"Observation"`, `"resourceType":"Observation","id":"`+created.ID+`"`, 1)
		body = strings.Replace(body, `"value":72`, fmt.Sprintf(`"value":%d`, value), 1)
		return env.client.Do(ctx, &Request{Method: "PUT", URL: path, Body: []byte(body), Header: http.Header{"If-Match": {`W/"` + version + `"`}}})
	}
	// The prescriber's edit lands first.
	if _, err := update(created.Meta.VersionID, 80); err != nil {
		t.Fatalf("the other writer: %v", err)
	}
	env.proxy.ResetSeen()
	_, err = update(created.Meta.VersionID, 75)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusPreconditionFailed || e.Attempts != 1 || e.Temporary || e.Outcome == nil {
		t.Fatalf("stale If-Match: %v %+v", err, e)
	}
	if n := len(env.proxy.Seen(faultproxy.MethodOf("PUT", "/Observation"))); n != 1 {
		t.Fatalf("a 412 was retried: %d PUTs", n)
	}
	cur, err := env.client.Do(ctx, &Request{Method: "GET", URL: path})
	if err != nil {
		t.Fatal(err)
	}
	var now struct {
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	_ = json.Unmarshal(cur.Body, &now)
	if now.Meta.VersionID == created.Meta.VersionID {
		t.Fatalf("the other writer's update did not make a version")
	}
	if _, err := update(now.Meta.VersionID, 75); err != nil {
		t.Fatalf("update after re-reading: %v", err)
	}
}
