// Package faultproxy is a test helper: an HTTP reverse proxy over
// loopback that puts faults between a client and a real server, so the
// connector's retry, token and idempotency rules are tested against the
// real sandbox (or a real third-party server) rather than against a fake
// that only plays the fault. It injects what networks and EHRs do: bursts
// of 503, 429 with Retry-After, answers that never come (timeouts),
// connection resets before or after the server acted, a failing token
// endpoint, an arbitrary answer such as a 412 or a redirect.
//
// Faults are rules tried in order on every request; the first that
// matches and has uses left acts. Every request the proxy saw is
// recorded (method, path, query, whether it carried a bearer token, what
// was injected, the status the client got) for the test to count.
package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Always, as Fault.Times, makes a fault act on every matching request.
const Always = -1

// Fault is one rule.
type Fault struct {
	// Name says what it is in Seen.Fault; "" means a description built
	// from the fields.
	Name string
	// Match picks the requests it applies to; nil matches every request.
	Match func(*http.Request) bool
	// Times is how many matching requests it acts on: 0 means once,
	// Always every time.
	Times int
	// After forwards the request to the server first and injects the
	// fault on the way back: the server acted, the client does not learn
	// it (with Reset or Delay), or learns something else (with Status).
	After bool
	// Delay holds the request (before forwarding, or before answering
	// with After) this long, or until the client gives up: a timeout.
	// Alone, the request then goes on normally.
	Delay time.Duration
	// Reset closes the client's connection with a TCP reset.
	Reset bool
	// Status, when set, is answered instead of the server's answer, with
	// Header and Body.
	Status int
	Header http.Header
	Body   string
	// Rewrite, with After, changes the server's answer before it goes
	// back (a token response with a shorter expires_in ...).
	Rewrite func(status int, header http.Header, body []byte) (int, []byte)
}

func (f *Fault) describe() string {
	if f.Name != "" {
		return f.Name
	}
	var parts []string
	if f.Delay > 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if f.Reset {
		parts = append(parts, "reset")
	}
	if f.Status != 0 {
		parts = append(parts, fmt.Sprint(f.Status))
	}
	if f.Rewrite != nil {
		parts = append(parts, "rewritten")
	}
	s := strings.Join(parts, "+")
	if f.After {
		s += " after forwarding"
	}
	return s
}

// Seen is one request the proxy received.
type Seen struct {
	At           time.Time
	Method       string
	Path         string
	Query        string
	Bearer       bool   // it carried an Authorization: Bearer header
	Fault        string // what was injected, "" for none
	Forwarded    bool   // it reached the server
	Status       int    // what the client got; 0 for a reset or an abandoned request
	ServerStatus int    // the server's status when forwarded
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:port), to be given
	// to the client, and as the public base, to the server behind it.
	URL string

	srv    *httptest.Server
	target *url.URL
	rt     http.RoundTripper

	mu     sync.Mutex
	faults []*rule
	seen   []Seen
}

type rule struct {
	Fault
	left int // uses left; <0 unlimited
}

// New starts a proxy in front of target (a base URL: scheme and host;
// the request path is kept as it is). Close it when done.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an absolute URL", target)
	}
	p := &Proxy{target: u, rt: &http.Transport{
		// No connection reuse towards the server: a reset of the client's
		// connection must not leave a half-used one behind.
		DisableKeepAlives: true,
		Proxy:             nil,
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy; held requests are released.
func (p *Proxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// Inject adds faults after those already there.
func (p *Proxy) Inject(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range faults {
		left := f.Times
		if left == 0 {
			left = 1
		}
		p.faults = append(p.faults, &rule{Fault: f, left: left})
	}
}

// Clear removes every fault (the record of what was seen stays).
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Seen returns the requests so far, matching match (nil: all).
func (p *Proxy) Seen(match func(Seen) bool) []Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Seen
	for _, s := range p.seen {
		if match == nil || match(s) {
			out = append(out, s)
		}
	}
	return out
}

// ResetSeen forgets what was seen.
func (p *Proxy) ResetSeen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

// Matchers.

// Path matches requests whose path starts with prefix.
func Path(prefix string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, prefix) }
}

// Method matches requests of method m (and, if given, path prefix).
func Method(m string, prefix ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if r.Method != m {
			return false
		}
		for _, p := range prefix {
			if !strings.HasPrefix(r.URL.Path, p) {
				return false
			}
		}
		return true
	}
}

// Not inverts a matcher.
func Not(m func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool { return !m(r) }
}

// PathOf selects Seen records by path prefix.
func PathOf(prefix string) func(Seen) bool {
	return func(s Seen) bool { return strings.HasPrefix(s.Path, prefix) }
}

// MethodOf selects Seen records by method and path prefix.
func MethodOf(m, prefix string) func(Seen) bool {
	return func(s Seen) bool { return s.Method == m && strings.HasPrefix(s.Path, prefix) }
}

func (p *Proxy) pick(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.left == 0 || (f.Match != nil && !f.Match(r)) {
			continue
		}
		if f.left > 0 {
			f.left--
		}
		ff := f.Fault
		return &ff
	}
	return nil
}

// arrive records s as received and returns its index, for finish. A
// request is on the record from the moment it arrives: a client that sees
// a reset or gives up may count the requests before the handler returns.
func (p *Proxy) arrive(s Seen) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, s)
	return len(p.seen) - 1
}

// finish replaces the record at i with what became of the request (unless
// ResetSeen forgot it meanwhile).
func (p *Proxy) finish(i int, s Seen) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i < len(p.seen) && p.seen[i].At.Equal(s.At) {
		p.seen[i] = s
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	s := Seen{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Bearer: strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")}
	i := p.arrive(s)
	defer func() { p.finish(i, s) }()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f := p.pick(r)
	if f != nil {
		s.Fault = f.describe()
	}
	if f != nil && !f.After {
		if f.Delay > 0 && !hold(r.Context(), f.Delay) {
			return
		}
		if f.Reset {
			reset(w)
			return
		}
		if f.Status != 0 {
			s.Status = answer(w, f)
			return
		}
	}
	resp, err := p.forward(r, body)
	if err != nil {
		s.Status = http.StatusBadGateway
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	s.Forwarded, s.ServerStatus = true, resp.status
	if f != nil && f.After {
		if f.Delay > 0 && !hold(r.Context(), f.Delay) {
			return
		}
		if f.Reset {
			reset(w)
			return
		}
		if f.Status != 0 {
			s.Status = answer(w, f)
			return
		}
		if f.Rewrite != nil {
			resp.status, resp.body = f.Rewrite(resp.status, resp.header, resp.body)
		}
	}
	for k, vs := range resp.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
	s.Status = resp.status
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// forward sends the request on, on its own context: a client giving up
// does not undo what the server does (as on a real network).
func (p *Proxy) forward(r *http.Request, body []byte) (*response, error) {
	u := *r.URL
	u.Scheme, u.Host = p.target.Scheme, p.target.Host
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		out.Header[k] = append([]string(nil), vs...)
	}
	out.Host = r.Host // the server sees the host the client used
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	h := resp.Header.Clone()
	h.Del("Content-Length")
	return &response{status: resp.StatusCode, header: h, body: b}, nil
}

func answer(w http.ResponseWriter, f *Fault) int {
	for k, vs := range f.Header {
		w.Header()[k] = vs
	}
	if f.Body != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/fhir+json")
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
	return f.Status
}

// hold waits d or until the client leaves; false when the client left.
func hold(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reset closes the client's connection with SO_LINGER 0: a TCP RST, as a
// crashing middlebox or server sends.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Outcome is an OperationOutcome body with one issue, for Fault.Body.
func Outcome(code, diagnostics string) string {
	return fmt.Sprintf(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q,"diagnostics":%q}]}`, code, diagnostics)
}
