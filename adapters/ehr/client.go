package ehr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// TokenProvider hands out access tokens for a FHIR server. TokenSource is
// the SMART Backend Services one.
type TokenProvider interface {
	// Token returns a token valid for a while yet, fetching one if need be.
	Token(ctx context.Context) (Token, error)
	// Invalidate drops t if it is still the one handed out: the server
	// refused it (401), so the next Token call fetches another.
	Invalidate(t Token)
}

// Config configures a Client.
type Config struct {
	// BaseURL is the FHIR base, e.g. https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4.
	// It must be https, or http to a loopback address (or with AllowHTTP).
	BaseURL string
	// Tokens authenticates requests to BaseURL's origin; nil sends no
	// Authorization (an open server).
	Tokens TokenProvider
	Policy RetryPolicy
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Logger gets a line per attempt (debug), per retry (info) and per
	// failure (warn); nil means slog.Default().
	Logger *slog.Logger
	// MaxResponseBytes bounds a successful response body; zero means 64 MiB.
	MaxResponseBytes int64
	// AllowHTTP permits an http base that is not loopback (a test network).
	AllowHTTP bool
	// UserAgent; empty means "kapbridge".
	UserAgent string
	// Now is the clock for HTTP-date Retry-After values; nil means time.Now.
	Now func() time.Time
}

// Bounds on what an error response may cost.
const (
	maxErrorBody = 64 << 10  // kept with the *Error
	maxDrain     = 256 << 10 // read past that to keep the connection
)

// Client sends FHIR requests to one EHR with the retry policy, the token
// handling and the logging of this package. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	origin    origin
	tokens    TokenProvider
	policy    RetryPolicy
	http      *http.Client
	log       *slog.Logger
	maxBody   int64
	userAgent string
	now       func() time.Time
}

// NewClient checks cfg and builds a Client.
func NewClient(cfg Config) (*Client, error) {
	base, err := parseBase(cfg.BaseURL, cfg.AllowHTTP)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:      base,
		origin:    originOf(base),
		tokens:    cfg.Tokens,
		policy:    cfg.Policy.withDefaults(),
		log:       cfg.Logger,
		maxBody:   cfg.MaxResponseBytes,
		userAgent: cfg.UserAgent,
		now:       cfg.Now,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.maxBody <= 0 {
		c.maxBody = 64 << 20
	}
	if c.userAgent == "" {
		c.userAgent = "kapbridge"
	}
	if c.now == nil {
		c.now = time.Now
	}
	rt := cfg.Transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	c.http = &http.Client{
		Transport: authGuard{next: rt, origin: c.origin},
		Timeout:   c.policy.AttemptTimeout,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errTooManyRedirects
			}
			return nil
		},
	}
	return c, nil
}

// Base is the FHIR base URL.
func (c *Client) Base() *url.URL { u := *c.base; return &u }

// Request is one FHIR interaction.
type Request struct {
	Method string
	// URL is relative to the base ("Observation/123",
	// "Observation?identifier=...") or absolute (a Bundle's next link, a
	// Location). Only URLs on the base's origin get the bearer token.
	URL    string
	Header http.Header
	// Body is sent as application/fhir+json unless Header says otherwise.
	Body []byte
	// Idempotent marks a POST that is safe to repeat: a search by POST, a
	// conditional create (If-None-Exist). GET, HEAD, PUT and DELETE are
	// idempotent already.
	Idempotent bool
	// Landed makes a request that is not idempotent (a create) retryable:
	// before each retry it is asked whether the failed attempt was stored
	// after all (typically a search by the resource's identifier). true
	// stops the retries and Do returns a Response with Landed set; false
	// lets the retry go ahead; an error stops with that error. Without it
	// such a request is repeated only when it certainly never left
	// (connection refused, DNS), or after a 401.
	Landed func(ctx context.Context) (bool, error)
	// LogID goes into the log lines (an outbox row id, a correlation id);
	// never put patient data in it.
	LogID string
}

// Response is a successful answer (2xx or 304), body read in full.
type Response struct {
	Status   int
	Header   http.Header
	Body     []byte
	Attempts int
	// Landed: an attempt failed in transit and Request.Landed then found
	// it stored. No answer of the server describes the result; Status is 0
	// and Body empty; the Landed check knows what it found.
	Landed bool
}

// errLanded stops retryablehttp's loop from PrepareRetry.
var errLanded = errors.New("ehr: the request landed")

// Do sends the request. Any answer other than 2xx or 304, and any
// failure, is an *Error (see Error for what it holds); 401 after a token
// refresh wraps ErrUnauthorized; a token that cannot be had wraps
// ErrTokenEndpoint; a non-idempotent request left unrepeated wraps
// ErrNotRetried.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	u, err := c.resolve(r.URL)
	if err != nil {
		return nil, &Error{Method: r.Method, URL: "(unparsable URL)", Err: err}
	}
	st := &attempt{
		c: c, r: r, url: u,
		sameOrigin: c.origin.matches(u),
		idempotent: r.Idempotent || idempotentMethod(r.Method),
	}
	var body any
	if len(r.Body) > 0 {
		body = r.Body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, st.fail(ctx, 0, nil, err)
	}
	for k, vs := range r.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/fhir+json")
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	if err := st.authorize(ctx, req.Request); err != nil {
		return nil, st.fail(ctx, 0, nil, err)
	}
	// One retryablehttp.Client per request (a few words; the http.Client
	// and its connections are shared) so that the policy's callbacks see
	// this request's state, which Backoff, called without a context,
	// could not otherwise reach.
	rc := &retryablehttp.Client{
		HTTPClient:      c.http,
		Logger:          nil, // its own lines would log whole URLs, query strings included
		RetryMax:        c.policy.MaxRetries + 1,
		RetryWaitMin:    c.policy.MinWait,
		RetryWaitMax:    c.policy.MaxWait,
		CheckRetry:      st.checkRetry,
		Backoff:         st.backoff,
		PrepareRetry:    st.prepareRetry,
		ErrorHandler:    retryablehttp.PassthroughErrorHandler,
		RequestLogHook:  st.logRequest,
		ResponseLogHook: st.logResponse,
	}
	resp, err := rc.Do(req)
	return st.finish(ctx, resp, err)
}

// attempt is the state of one Do across its attempts. retryablehttp
// calls its methods one at a time, so it needs no lock.
type attempt struct {
	c          *Client
	r          *Request
	url        *url.URL
	sameOrigin bool
	idempotent bool

	attempts    int
	retries     int // retries granted for transient failures
	started     time.Time
	token       Token
	sentToken   bool
	refreshed   bool // the one refresh after a 401 is used
	checkLanded bool // run r.Landed before the next attempt
	reason      string
	stopped     string
	notRetried  bool
	retryAfter  time.Duration
}

func (a *attempt) authorize(ctx context.Context, req *http.Request) error {
	if !a.sameOrigin || a.c.tokens == nil {
		return nil
	}
	tok, err := a.c.tokens.Token(ctx)
	if err != nil {
		return err
	}
	// A fresh header map: the previous attempt's request may still be in
	// the transport's hands.
	req.Header = req.Header.Clone()
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	a.token, a.sentToken = tok, true
	return nil
}

func (a *attempt) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	a.reason, a.retryAfter = "", 0
	if err != nil {
		a.reason = "network: " + transportError(err).Error()
		if !retryableError(err) {
			return false, nil
		}
		return a.grant(notSent(err)), nil
	}
	code := resp.StatusCode
	if ra, ok := retryAfter(resp.Header, a.c.now()); ok {
		a.retryAfter = ra
	}
	if code == http.StatusUnauthorized && a.sentToken && !a.refreshed && a.c.origin.matches(resp.Request.URL) {
		// The token may have expired early or been revoked: one fresh
		// token, at once. A 401 means the request was not carried out, so
		// even a create may go again.
		a.refreshed = true
		a.reason = "401: fetching a new token"
		a.c.tokens.Invalidate(a.token)
		return true, nil
	}
	if !retryableStatus(code) {
		return false, nil
	}
	a.reason = fmt.Sprintf("status %d", code)
	if a.retryAfter > a.c.policy.MaxRetryAfter {
		a.stopped = fmt.Sprintf("the server asked to wait %s (Retry-After), more than the %s this client waits", a.retryAfter, a.c.policy.MaxRetryAfter)
		return false, nil
	}
	return a.grant(false), nil
}

// grant decides whether a transient failure is retried.
func (a *attempt) grant(neverSent bool) bool {
	if a.retries >= a.c.policy.MaxRetries {
		a.stopped = fmt.Sprintf("gave up after %d attempts", a.attempts)
		return false
	}
	if !a.idempotent && !neverSent {
		if a.r.Landed == nil {
			a.stopped = "not retried: " + a.r.Method + " is not idempotent and may have been carried out; give the request a Landed check to retry it"
			a.notRetried = true
			return false
		}
		a.checkLanded = true
	}
	a.retries++
	return true
}

// backoff: no wait to retry with a new token; Retry-After when the server
// sent one (already known to be within the cap); else the policy's
// exponential backoff with jitter.
func (a *attempt) backoff(_, _ time.Duration, _ int, resp *http.Response) time.Duration {
	var wait time.Duration
	switch {
	case resp != nil && resp.StatusCode == http.StatusUnauthorized:
		wait = 0
	case a.retryAfter > 0:
		wait = a.retryAfter
	default:
		wait = a.c.policy.backoff(a.retries - 1)
	}
	a.c.log.Info("ehr retry", a.logAttrs(slog.String("reason", a.reason), slog.Duration("wait", wait))...)
	return wait
}

// prepareRetry runs after the wait, before the next attempt: the Landed
// check of a create, then the token (PrepareRetry refreshes it: a new one
// after a 401, or simply the cached one if still good).
func (a *attempt) prepareRetry(req *http.Request) error {
	if a.checkLanded {
		a.checkLanded = false
		landed, err := a.r.Landed(req.Context())
		if err != nil {
			return fmt.Errorf("checking whether the failed %s landed: %w", a.r.Method, err)
		}
		if landed {
			a.c.log.Info("ehr request landed", a.logAttrs(slog.String("after", a.reason))...)
			return errLanded
		}
	}
	return a.authorize(req.Context(), req)
}

func (a *attempt) logRequest(_ retryablehttp.Logger, _ *http.Request, n int) {
	a.attempts = n + 1
	a.started = time.Now()
	a.c.log.Debug("ehr request", a.logAttrs()...)
}

func (a *attempt) logResponse(_ retryablehttp.Logger, resp *http.Response) {
	a.c.log.Debug("ehr response", a.logAttrs(slog.Int("status", resp.StatusCode), slog.Duration("took", time.Since(a.started)))...)
}

// logAttrs: method, host, path, attempt and the caller's id. Never the
// query (search parameters carry identifiers), a header or a body.
func (a *attempt) logAttrs(extra ...any) []any {
	attrs := []any{slog.String("method", a.r.Method), slog.String("host", a.url.Host), slog.String("path", a.url.Path), slog.Int("attempt", a.attempts)}
	if a.r.LogID != "" {
		attrs = append(attrs, slog.String("id", a.r.LogID))
	}
	return append(attrs, extra...)
}

func (a *attempt) finish(ctx context.Context, resp *http.Response, err error) (*Response, error) {
	if errors.Is(err, errLanded) {
		if resp != nil {
			drainClose(resp.Body)
		}
		return &Response{Landed: true, Attempts: a.attempts}, nil
	}
	if err != nil {
		if resp != nil {
			drainClose(resp.Body)
		}
		return nil, a.fail(ctx, 0, nil, err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		body, err := io.ReadAll(io.LimitReader(resp.Body, a.c.maxBody+1))
		if err != nil {
			return nil, a.fail(ctx, resp.StatusCode, resp, fmt.Errorf("reading the response: %w", transportError(err)))
		}
		if int64(len(body)) > a.c.maxBody {
			return nil, a.fail(ctx, resp.StatusCode, resp, fmt.Errorf("%w of %d bytes", ErrResponseTooLarge, a.c.maxBody))
		}
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Attempts: a.attempts}, nil
	}
	return nil, a.fail(ctx, resp.StatusCode, resp, nil)
}

// fail builds the *Error, reading (up to maxErrorBody) the final response
// and its OperationOutcome, and logs it.
func (a *attempt) fail(ctx context.Context, status int, resp *http.Response, cause error) *Error {
	e := &Error{Method: a.r.Method, URL: safeURL(a.url), Status: status, Attempts: a.attempts, Stopped: a.stopped, notRetried: a.notRetried}
	if cause != nil {
		e.Err = transportError(cause)
		// The caller's own deadline or cancellation says nothing about the
		// EHR; an attempt's timeout (net/http's, also a DeadlineExceeded)
		// does.
		e.Temporary = ctx.Err() == nil && retryableError(cause) && !errors.Is(cause, ErrResponseTooLarge)
		var te *TokenError
		if errors.As(cause, &te) {
			e.Temporary = te.Temporary
		}
	}
	if resp != nil && cause == nil {
		e.ContentType = resp.Header.Get("Content-Type")
		e.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if isJSON(e.ContentType) || looksLikeJSON(e.Body) {
			e.Outcome, _ = ParseOperationOutcome(e.Body)
		}
		e.Temporary = retryableStatus(status)
		e.RetryAfter = a.retryAfter
		if status == http.StatusUnauthorized && a.refreshed {
			e.Err = ErrUnauthorized
		}
	}
	attrs := a.logAttrs(slog.Int("status", status), slog.Bool("temporary", e.Temporary))
	if e.Outcome != nil {
		attrs = append(attrs, slog.String("outcome", e.Outcome.Summary()))
	}
	if e.Stopped != "" {
		attrs = append(attrs, slog.String("stopped", e.Stopped))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	a.c.log.Warn("ehr request failed", attrs...)
	return e
}

func isJSON(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/fhir+json" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func looksLikeJSON(b []byte) bool {
	s := strings.TrimSpace(string(b[:min(len(b), 16)]))
	return strings.HasPrefix(s, "{")
}

func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// resolve makes ref absolute against the base: a relative reference is
// appended to the base path (FHIR URLs are [base]/[type]/[id], so
// "Observation/1" must not replace the base's last segment, as RFC 3986
// resolution would).
func (c *Client) resolve(ref string) (*url.URL, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if u.IsAbs() {
		if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("not an http(s) URL")
		}
		return u, nil
	}
	if u.Host != "" {
		return nil, fmt.Errorf("a scheme-relative URL is not accepted")
	}
	out := *c.base
	out.Path = strings.TrimSuffix(c.base.Path, "/") + "/" + strings.TrimPrefix(u.Path, "/")
	out.RawPath = ""
	out.RawQuery = u.RawQuery
	out.Fragment = ""
	return &out, nil
}

func parseBase(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("ehr: base URL %q is not an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("ehr: base URL %q must have no query, fragment or user info", safeURL(u))
	}
	if u.Scheme == "http" && !allowHTTP && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("ehr: base URL %q is plain http to a host that is not loopback: tokens and patient data would cross the network unencrypted", safeURL(u))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origin is scheme, host and port, the unit a bearer token is bound to.
type origin struct{ scheme, host, port string }

func originOf(u *url.URL) origin {
	o := origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.port == "" {
		o.port = map[string]string{"https": "443", "http": "80"}[o.scheme]
	}
	return o
}

func (o origin) matches(u *url.URL) bool { return u != nil && originOf(u) == o }

// authGuard removes Authorization from every request that leaves for
// another origin than the base's: an absolute link Do was given is not
// authorized in the first place, but net/http copies Authorization on a
// redirect to a subdomain, to another port, or from https to http.
type authGuard struct {
	next   http.RoundTripper
	origin origin
}

func (g authGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" && !g.origin.matches(req.URL) {
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
	}
	return g.next.RoundTrip(req)
}
