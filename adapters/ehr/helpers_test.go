package ehr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

const testClientID = "kapbridge-test"

// Keys are generated once per test binary (RSA 3072 takes a moment).
var (
	keysOnce       sync.Once
	rsaKey, ecKey  *smart.SigningKey
	strangerEC     *smart.SigningKey // never registered
	testScope      = "system/Observation.rs system/Observation.c system/Patient.rs"
	fastPolicy     = RetryPolicy{MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond, AttemptTimeout: 2 * time.Second}
	noKeepAlive    = &http.Transport{DisableKeepAlives: true} // no silent transport-level retries on reused connections
	errInjectedDNS = &net.DNSError{Err: "no such host (injected)", Name: "ehr.invalid", IsNotFound: true}
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = smart.GenerateKey(smart.RS384); err != nil {
			panic(err)
		}
		if ecKey, err = smart.GenerateKey(smart.ES384); err != nil {
			panic(err)
		}
		if strangerEC, err = smart.GenerateKey(smart.ES384); err != nil {
			panic(err)
		}
	})
}

// tokenServer is a SMART Backend Services token endpoint over loopback:
// it checks client assertions with smart.Validator against the registered
// public keys (or a client secret with HTTP Basic) and issues opaque
// tokens that fhirServer accepts until they expire or are revoked.
type tokenServer struct {
	t         testing.TB
	srv       *httptest.Server
	validator *smart.Validator
	secret    string        // when set, HTTP Basic with this secret is expected instead
	lifetime  time.Duration // expires_in of issued tokens

	mu       sync.Mutex
	requests int
	issued   map[string]time.Time // token -> expiry
	// fault, when set, may answer a request itself (returning true): n
	// counts token requests from 1.
	fault    func(n int, w http.ResponseWriter, r *http.Request) bool
	delay    time.Duration
	lastForm url.Values
	lastAuth string
}

func newTokenServer(t testing.TB) *tokenServer {
	t.Helper()
	keys(t)
	ts := &tokenServer{t: t, lifetime: 5 * time.Minute, issued: map[string]time.Time{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	allowed, _ := smart.ParseScopes("system/*.cruds")
	ts.validator = &smart.Validator{
		TokenURL: ts.url(),
		Clients: smart.Clients{testClientID: {
			ID:     testClientID,
			JWKS:   &smart.JWKS{Keys: []smart.JWK{rsaKey.Public(), ecKey.Public()}},
			Scopes: allowed,
		}},
	}
	return ts
}

func (ts *tokenServer) url() string { return ts.srv.URL + "/auth/token" }

// last is the form and Authorization header of the last token request.
func (ts *tokenServer) last() (url.Values, string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.lastForm, ts.lastAuth
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	n, fault, delay := ts.requests, ts.fault, ts.delay
	ts.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fault != nil && fault(n, w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/auth/token" {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ts.mu.Lock()
	ts.lastForm, ts.lastAuth = r.PostForm, r.Header.Get("Authorization")
	ts.mu.Unlock()
	var granted string
	if ts.secret != "" {
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id) // RFC 6749 section 2.3.1
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != testClientID || secret != ts.secret || r.PostForm.Get("grant_type") != smart.GrantClientCredentials {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "bad client credentials")
			return
		}
		granted = r.PostForm.Get("scope")
	} else {
		req, err := ts.validator.ValidateTokenRequest(r.Context(), r.PostForm)
		var ve *smart.ValidationError
		if errors.As(err, &ve) {
			status := http.StatusBadRequest
			if ve.OAuthError() == "invalid_client" {
				status = http.StatusUnauthorized
			}
			oauthError(w, status, ve.OAuthError(), ve.Reason)
			return
		}
		if err != nil {
			oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		granted = req.Scopes.Within(req.Assertion.Client.Scopes).String()
	}
	tok := smart.NewID()
	ts.mu.Lock()
	ts.issued[tok] = time.Now().Add(ts.lifetime)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ts.lifetime / time.Second), "scope": granted})
}

func (ts *tokenServer) valid(tok string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.issued[tok]
	return ok && time.Now().Before(exp)
}

func (ts *tokenServer) revokeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.issued)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// hit is one request the FHIR server saw.
type hit struct {
	method, path, query, auth string
	body                      string
}

// fhirServer is a FHIR server over loopback that demands a bearer token
// the tokenServer issued (a 401 OperationOutcome otherwise), then runs the
// test's handler. n counts the FHIR requests from 1 (the discovery
// document and the 401s included).
type fhirServer struct {
	srv    *httptest.Server
	tokens *tokenServer
	open   bool // no token needed
	// smartConfig, when set, is served at /.well-known/smart-configuration.
	smartConfig []byte

	mu      sync.Mutex
	hits    []hit
	handler func(w http.ResponseWriter, r *http.Request, n int)
}

func newFHIRServer(t testing.TB, tokens *tokenServer, handler func(w http.ResponseWriter, r *http.Request, n int)) *fhirServer {
	t.Helper()
	fs := &fhirServer{tokens: tokens, handler: handler}
	fs.srv = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fhirServer) base() string { return fs.srv.URL + "/fhir/R4" }

func (fs *fhirServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := readAllLimited(r.Body)
	fs.mu.Lock()
	fs.hits = append(fs.hits, hit{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(body)})
	n, handler := len(fs.hits), fs.handler
	fs.mu.Unlock()
	if r.URL.Path == "/fhir/R4"+smart.WellKnownPath { // public, as on every server
		if fs.smartConfig == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(fs.smartConfig)
		return
	}
	if !fs.open {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !fs.tokens.valid(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeOutcome(w, http.StatusUnauthorized, "security", "the access token is missing, expired or revoked")
			return
		}
	}
	handler(w, r, n)
}

func (fs *fhirServer) seen() []hit {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]hit(nil), fs.hits...)
}

func readAllLimited(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(&limited{r: r, n: 1 << 20})
	return b.Bytes(), err
}

type limited struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= k
	return k, err
}

func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome", "issue": []any{
		map[string]any{"severity": "error", "code": code, "diagnostics": diagnostics}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// resetConn answers with a TCP reset: the connection is taken over and
// closed with SO_LINGER 0.
func resetConn(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// testSource is a TokenSource for the test client with the ES384 key.
func testSource(t testing.TB, tokens *tokenServer, edit func(*TokenConfig)) *TokenSource {
	t.Helper()
	keys(t)
	cfg := TokenConfig{TokenURL: tokens.url(), ClientID: testClientID, Key: ecKey, Scope: testScope, Policy: fastPolicy, Logger: discard}
	if edit != nil {
		edit(&cfg)
	}
	src, err := NewTokenSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func testClient(t testing.TB, fs *fhirServer, src TokenProvider, edit func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: fs.base(), Tokens: src, Policy: fastPolicy, Transport: noKeepAlive, Logger: discard}
	if edit != nil {
		edit(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var discard = slog.New(slog.DiscardHandler)

func newJSONLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// dialFailures fails the first n dials with a DNS error, like an EHR host
// that does not resolve for a moment: the request never leaves.
type dialFailures struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (d *dialFailures) RoundTrip(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	fail := d.n > 0
	d.n--
	d.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errInjectedDNS}
	}
	return d.next.RoundTrip(r)
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
