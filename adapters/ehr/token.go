package ehr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Token is an access token and when it stops being good. It prints as
// "[redacted]": the token never reaches a log through fmt or slog.
type Token struct {
	AccessToken string
	Expiry      time.Time
	Scope       string // as granted, if the server said
}

func (t Token) String() string {
	return fmt.Sprintf("Token{[redacted], expires %s, scope %q}", t.Expiry.UTC().Format(time.RFC3339), t.Scope)
}

// GoString keeps the token out of %#v.
func (t Token) GoString() string { return t.String() }

// LogValue keeps the token out of slog.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expiry", t.Expiry), slog.String("scope", t.Scope))
}

// TokenConfig configures a TokenSource.
type TokenConfig struct {
	// FHIRBase is the FHIR server's base URL: the token URL is discovered
	// from FHIRBase/.well-known/smart-configuration when TokenURL is empty.
	FHIRBase string
	TokenURL string
	ClientID string
	// Key signs client assertions (private_key_jwt). Exactly one of Key
	// and ClientSecret is set.
	Key *smart.SigningKey
	// JKU, with Key, goes into every assertion's header: the URL where the
	// client's JWK Set is published, as registered with the EHR.
	JKU string
	// ClientSecret authenticates with HTTP Basic instead of an assertion,
	// where an EHR offers nothing else (Oracle Health offers both).
	ClientSecret string
	// Scope is what to ask for, space-separated (system/Observation.rs ...).
	Scope string
	// Skew: a token is renewed this long before it expires (never less
	// than half its lifetime ahead); zero means 30 s.
	Skew time.Duration
	// Policy governs retries of the token request and the discovery.
	Policy    RetryPolicy
	Transport http.RoundTripper // nil means a clone of http.DefaultTransport
	Logger    *slog.Logger      // nil means slog.Default()
	Now       func() time.Time  // nil means time.Now
	AllowHTTP bool              // permit http endpoints that are not loopback
}

// DefaultTokenLifetime is assumed for a token whose response has no
// expires_in: SMART recommends at most five minutes.
const DefaultTokenLifetime = 5 * time.Minute

// TokenSource obtains and caches SMART Backend Services access tokens for
// one client at one EHR. It is a TokenProvider, safe for concurrent use:
// while a token is fetched, every caller waits for that one fetch.
type TokenSource struct {
	cfg      TokenConfig
	policy   RetryPolicy
	http     *http.Client // the token request: no redirects followed
	discover *http.Client // the discovery GET: redirects followed
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	tokenURL string
	tok      Token
	renewAt  time.Time
	inflight *tokenCall
}

type tokenCall struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewTokenSource checks cfg: a client id, one of Key or ClientSecret, a
// well-formed Scope, and a TokenURL or a FHIRBase to discover it from.
func NewTokenSource(cfg TokenConfig) (*TokenSource, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("ehr: a token source needs the client id")
	}
	if (cfg.Key == nil) == (cfg.ClientSecret == "") {
		return nil, errors.New("ehr: a token source needs exactly one of a signing key (private_key_jwt) and a client secret")
	}
	if cfg.JKU != "" && cfg.Key == nil {
		return nil, errors.New("ehr: jku goes with a signing key, not a client secret")
	}
	if strings.TrimSpace(cfg.Scope) == "" {
		return nil, errors.New("ehr: a token source needs the scopes to ask for")
	}
	if _, err := smart.ParseScopes(cfg.Scope); err != nil {
		return nil, fmt.Errorf("ehr: %w", err)
	}
	if cfg.TokenURL != "" {
		if err := checkCredentialURL(cfg.TokenURL, cfg.AllowHTTP); err != nil {
			return nil, fmt.Errorf("ehr: token URL: %w", err)
		}
	} else if _, err := parseBase(cfg.FHIRBase, cfg.AllowHTTP); err != nil {
		return nil, fmt.Errorf("ehr: no token URL, and the FHIR base to discover it from is not usable: %w", err)
	}
	ts := &TokenSource{cfg: cfg, policy: cfg.Policy.withDefaults(), log: cfg.Logger, now: cfg.Now, tokenURL: cfg.TokenURL}
	if ts.cfg.Skew <= 0 {
		ts.cfg.Skew = 30 * time.Second
	}
	if ts.log == nil {
		ts.log = slog.Default()
	}
	if ts.now == nil {
		ts.now = time.Now
	}
	rt := cfg.Transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	ts.http = &http.Client{Transport: rt, Timeout: ts.policy.AttemptTimeout,
		// A redirected token request would carry the client secret, or an
		// assertion whose aud no longer matches, somewhere unplanned.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ts.discover = &http.Client{Transport: rt, Timeout: ts.policy.AttemptTimeout,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errTooManyRedirects
			}
			return nil
		}}
	return ts, nil
}

// Token returns the cached token while it is good for more than the skew,
// else fetches a new one; concurrent callers share one fetch. The fetch
// runs on its own (a caller giving up does not cancel it for the others)
// and ends within about AttemptTimeout times the attempts plus the waits.
func (ts *TokenSource) Token(ctx context.Context) (Token, error) {
	ts.mu.Lock()
	if ts.tok.AccessToken != "" && ts.now().Before(ts.renewAt) {
		t := ts.tok
		ts.mu.Unlock()
		return t, nil
	}
	call := ts.inflight
	if call == nil {
		call = &tokenCall{done: make(chan struct{})}
		ts.inflight = call
		go ts.fetch(call)
	}
	ts.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

// Invalidate implements TokenProvider: t is dropped if it is the cached
// token, so that of several requests refused with the same token only the
// first causes a fetch.
func (ts *TokenSource) Invalidate(t Token) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok.AccessToken != "" && ts.tok.AccessToken == t.AccessToken {
		ts.tok, ts.renewAt = Token{}, time.Time{}
	}
}

// TokenURL is the configured or discovered token URL ("" before the first
// discovery).
func (ts *TokenSource) TokenURL() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.tokenURL
}

func (ts *TokenSource) fetch(call *tokenCall) {
	ctx := context.Background()
	tok, err := ts.fetchToken(ctx)
	ts.mu.Lock()
	if err == nil {
		ts.tok = tok
		life := tok.Expiry.Sub(ts.now())
		ts.renewAt = tok.Expiry.Add(-min(ts.cfg.Skew, life/2))
	}
	ts.inflight = nil
	ts.mu.Unlock()
	call.tok, call.err = tok, err
	close(call.done)
}

// TokenError is a failure to get an access token: from the token endpoint
// (Status and, when the body was one, its OAuth error) or from the
// discovery of its URL. errors.Is(err, ErrTokenEndpoint) holds for it.
type TokenError struct {
	URL       string // token endpoint or configuration URL, no query
	Status    int    // 0 without a response
	OAuth     *smart.TokenError
	Attempts  int
	Temporary bool
	Err       error
}

func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ehr: no access token from %s: ", e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	}
	if e.OAuth != nil {
		b.WriteString(" (" + e.OAuth.Code)
		if e.OAuth.Description != "" {
			b.WriteString(": " + e.OAuth.Description)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		if e.Status != 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *TokenError) Unwrap() error { return e.Err }

// Is makes every TokenError match ErrTokenEndpoint.
func (e *TokenError) Is(target error) bool { return target == ErrTokenEndpoint }

func (ts *TokenSource) fetchToken(ctx context.Context) (Token, error) {
	ts.mu.Lock()
	tokenURL := ts.tokenURL
	ts.mu.Unlock()
	if tokenURL == "" {
		var err error
		if tokenURL, err = ts.discoverTokenURL(ctx); err != nil {
			return Token{}, err
		}
		ts.mu.Lock()
		ts.tokenURL = tokenURL
		ts.mu.Unlock()
	}
	u, _ := url.Parse(tokenURL)
	var sentAt time.Time
	status, body, attempts, err := ts.exchange(ctx, ts.http, u, func() (*http.Request, error) {
		form := url.Values{"grant_type": {smart.GrantClientCredentials}, "scope": {ts.cfg.Scope}}
		sentAt = ts.now()
		if ts.cfg.Key != nil {
			// A new assertion, with a new jti, for every attempt: the
			// server refuses a jti it has seen, so a token request cannot
			// simply be resent (and retryablehttp would resend it as it is).
			a, err := ts.cfg.Key.Sign(smart.Assertion{ClientID: ts.cfg.ClientID, TokenURL: tokenURL, JKU: ts.cfg.JKU, IssuedAt: sentAt})
			if err != nil {
				return nil, err
			}
			form = smart.TokenRequestForm(a, ts.cfg.Scope)
		}
		req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if ts.cfg.ClientSecret != "" {
			// RFC 6749 section 2.3.1: both form-urlencoded first.
			req.SetBasicAuth(url.QueryEscape(ts.cfg.ClientID), url.QueryEscape(ts.cfg.ClientSecret))
		}
		return req, nil
	})
	te := &TokenError{URL: safeURL(u), Status: status, Attempts: attempts, Err: err}
	if err != nil {
		te.Temporary = retryableError(err) && !errors.Is(err, errBodyTooLarge)
		ts.log.Warn("smart token failed", "url", te.URL, "attempts", attempts, "error", err.Error())
		return Token{}, te
	}
	if status != http.StatusOK {
		te.OAuth, _ = smart.ParseTokenError(body)
		te.Temporary = retryableStatus(status)
		if status/100 == 3 {
			te.Err = errors.New("the token endpoint redirected; configure the URL it redirects to")
		}
		ts.log.Warn("smart token refused", "url", te.URL, "status", status, "attempts", attempts, "oauth_error", oauthCode(te.OAuth))
		return Token{}, te
	}
	resp, err := smart.ParseTokenResponse(body)
	if err != nil {
		te.Err = err
		ts.log.Warn("smart token unreadable", "url", te.URL, "error", err.Error())
		return Token{}, te
	}
	life := time.Duration(resp.ExpiresIn) * time.Second
	if life <= 0 {
		life = DefaultTokenLifetime
	}
	tok := Token{AccessToken: resp.AccessToken, Expiry: sentAt.Add(life), Scope: resp.Scope}
	ts.log.Info("smart token", "url", te.URL, "expires_in", resp.ExpiresIn, "scope", resp.Scope, "attempts", attempts)
	return tok, nil
}

func oauthCode(e *smart.TokenError) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func (ts *TokenSource) discoverTokenURL(ctx context.Context) (string, error) {
	base, _ := parseBase(ts.cfg.FHIRBase, ts.cfg.AllowHTTP)
	u := *base
	u.Path += smart.WellKnownPath
	status, body, attempts, err := ts.exchange(ctx, ts.discover, &u, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err == nil {
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	})
	te := &TokenError{URL: safeURL(&u), Status: status, Attempts: attempts}
	switch {
	case err != nil:
		te.Err, te.Temporary = fmt.Errorf("discovering the token URL: %w", err), retryableError(err)
	case status != http.StatusOK:
		te.Err, te.Temporary = errors.New("discovering the token URL: the SMART configuration could not be read"), retryableStatus(status)
	default:
		conf, perr := smart.ParseConfiguration(body)
		if perr == nil && ts.cfg.Key != nil {
			perr = conf.CheckBackendServices(ts.cfg.Key.Alg())
		}
		if perr == nil && ts.cfg.ClientSecret != "" && len(conf.TokenEndpointAuthMethodsSupported) > 0 &&
			!slices.Contains(conf.TokenEndpointAuthMethodsSupported, "client_secret_basic") {
			perr = fmt.Errorf("the server's token_endpoint_auth_methods_supported %v does not include client_secret_basic", conf.TokenEndpointAuthMethodsSupported)
		}
		if perr == nil {
			perr = checkCredentialURL(conf.TokenEndpoint, ts.cfg.AllowHTTP)
		}
		if perr == nil {
			ts.log.Info("smart token URL discovered", "configuration", te.URL, "token_url", conf.TokenEndpoint)
			return conf.TokenEndpoint, nil
		}
		te.Err = fmt.Errorf("discovering the token URL: %w", perr)
	}
	ts.log.Warn("smart discovery failed", "url", te.URL, "status", status, "error", te.Err.Error())
	return "", te
}

// errBodyTooLarge: a token or configuration response over 1 MiB.
var errBodyTooLarge = errors.New("response body over 1 MiB")

// exchange sends the request build makes (a new one each attempt) with
// the retry policy: network errors, 429 and 5xx but 501 are retried,
// Retry-After honoured up to the policy's cap. It returns the final
// status and body (up to 1 MiB). The token request is a POST, but
// repeating it is harmless: each attempt asks for a token afresh, with a
// new assertion.
func (ts *TokenSource) exchange(ctx context.Context, hc *http.Client, u *url.URL, build func() (*http.Request, error)) (status int, body []byte, attempts int, err error) {
	for retry := 0; ; retry++ {
		req, err := build()
		if err != nil {
			return 0, nil, attempts, err
		}
		attempts++
		resp, err := hc.Do(req.WithContext(ctx))
		var wait time.Duration
		if err != nil {
			err = transportError(err)
			if !retryableError(err) || retry >= ts.policy.MaxRetries {
				return 0, nil, attempts, err
			}
			wait = ts.policy.backoff(retry)
			ts.log.Info("smart retry", "url", safeURL(u), "attempt", attempts, "error", err.Error(), "wait", wait)
		} else {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
			drainClose(resp.Body)
			if rerr == nil && len(body) > 1<<20 {
				rerr = errBodyTooLarge
			}
			if !retryableStatus(resp.StatusCode) || retry >= ts.policy.MaxRetries {
				if rerr != nil {
					return resp.StatusCode, nil, attempts, transportError(rerr)
				}
				return resp.StatusCode, body, attempts, nil
			}
			wait = ts.policy.backoff(retry)
			if ra, ok := retryAfter(resp.Header, ts.now()); ok {
				if ra > ts.policy.MaxRetryAfter {
					return resp.StatusCode, body, attempts, nil
				}
				wait = ra
			}
			ts.log.Info("smart retry", "url", safeURL(u), "attempt", attempts, "status", resp.StatusCode, "wait", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, attempts, ctx.Err()
		case <-t.C:
		}
	}
}

// checkCredentialURL: credentials (a client secret, an assertion) go over
// https only, or to loopback, unless allowHTTP.
func checkCredentialURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must have no fragment or user info", safeURL(u))
	}
	if u.Scheme == "http" && !allowHTTP && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q is plain http to a host that is not loopback", safeURL(u))
	}
	return nil
}
