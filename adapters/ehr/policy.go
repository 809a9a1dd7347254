package ehr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says which failures are tried again and how long to wait.
// Its zero value is the default of every field.
type RetryPolicy struct {
	// MaxRetries is how many times a request is repeated after its first
	// attempt; zero means 4, a negative value none. A 401 answered by a
	// token refresh does not count.
	MaxRetries int
	// MinWait and MaxWait bound the backoff: the n-th retry waits about
	// MinWait * 2^n, never more than MaxWait, half of it random (so that
	// clients failed together do not return together). Zero means 500 ms
	// and 30 s.
	MinWait, MaxWait time.Duration
	// MaxRetryAfter is the longest Retry-After a request waits for; zero
	// means 2 minutes. A server asking for more is not retried then: the
	// *Error says how long it asked for (RetryAfter), so that a queue can
	// come back then without holding a worker.
	MaxRetryAfter time.Duration
	// AttemptTimeout bounds one attempt, reading the response included;
	// zero means 60 s. A timed-out attempt counts as a network error.
	AttemptTimeout time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = 4
	} else if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.MinWait <= 0 {
		p.MinWait = 500 * time.Millisecond
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 30 * time.Second
	}
	if p.MaxWait < p.MinWait {
		p.MaxWait = p.MinWait
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 2 * time.Minute
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = 60 * time.Second
	}
	return p
}

// backoff is the wait before retry n (0 for the first retry): capped
// exponential, with "equal jitter": half the step fixed, half random.
func (p RetryPolicy) backoff(n int) time.Duration {
	step := p.MaxWait
	if n < 32 {
		if d := p.MinWait << n; d > 0 && d < p.MaxWait {
			step = d
		}
	}
	half := step / 2
	return half + rand.N(step-half+1)
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3). A date in the past is a wait of zero.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// retryableStatus: 429 and every 5xx but 501 (Not Implemented will not
// change by asking again). A status outside 100..599 is a broken server,
// treated like a 5xx.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented) || code < 100
}

// errTooManyRedirects ends a redirect loop; it is not retried.
var errTooManyRedirects = errors.New("ehr: stopped after 5 redirects")

// retryableError says whether a transport error may go away: refused or
// reset connections and timeouts may; a certificate that does not verify,
// a redirect loop or a cancelled caller will not. The caller's own
// context is checked before this.
func retryableError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, errTooManyRedirects) {
		return false
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		invalidCert      x509.CertificateInvalidError
		hostname         x509.HostnameError
		verification     *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &invalidCert) || errors.As(err, &hostname) || errors.As(err, &verification) {
		return false
	}
	return true
}

// notSent says whether the request certainly never reached the server:
// the connection was never made (DNS failed, connection refused). Such a
// request may be repeated whatever its method.
func notSent(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// idempotentMethod: RFC 9110 section 9.2.2.
func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
