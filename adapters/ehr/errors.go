package ehr

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sentinels for errors.Is on an *Error or a *TokenError.
var (
	// ErrUnauthorized: the FHIR server answered 401 again after a fresh
	// token was fetched: the client's registration or scopes are wrong,
	// and asking again will not help.
	ErrUnauthorized = errors.New("ehr: the FHIR server refused the access token (401), also after fetching a new one")
	// ErrNotRetried: a request that is not idempotent failed in a way that
	// leaves open whether the server acted on it, and the request had no
	// Landed check, so it was not repeated.
	ErrNotRetried = errors.New("ehr: not retried: the request is not idempotent and may have been carried out")
	// ErrTokenEndpoint: no access token could be had (the token endpoint
	// or the discovery of its URL failed).
	ErrTokenEndpoint = errors.New("ehr: no access token")
	// ErrResponseTooLarge: a response body over Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("ehr: response body over the limit")
)

// Error is a FHIR request that failed: the EHR's final answer, when there
// was one, with its OperationOutcome and body (up to 64 KiB), or the
// transport error. Error() names the method, URL without its query,
// status, attempts and the outcome's issue codes, and no more: it can go
// to a log. Outcome.Text() and Body hold what the EHR said in full, which
// may quote patient data: they belong with the failed delivery's record.
type Error struct {
	Method string
	URL    string // scheme://host/path: never the query string
	Status int    // 0 when no response came
	// Outcome is the OperationOutcome of the final response, if its body
	// was one.
	Outcome     *Outcome
	Body        []byte
	ContentType string
	// RetryAfter is what the server asked for in Retry-After, if it did.
	RetryAfter time.Duration
	Attempts   int
	// Temporary says a later try may succeed: a network error, 429 or a
	// 5xx but 501. A queue reschedules those and dead-letters the others.
	Temporary bool
	// Stopped says why retrying stopped for a Temporary error: attempts
	// used up, Retry-After too long, a request that is not idempotent.
	Stopped string
	Err     error

	notRetried bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ehr: %s %s: ", e.Method, e.URL)
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	if s := e.Outcome.Summary(); s != "" {
		b.WriteString("; OperationOutcome " + s)
	}
	if e.Stopped != "" {
		b.WriteString("; " + e.Stopped)
	}
	if e.Status != 0 && e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotRetried) true for a request left
// unrepeated because it is not idempotent.
func (e *Error) Is(target error) bool { return target == ErrNotRetried && e.notRetried }

// safeURL is u without query, fragment or user info: what logs and errors
// may show.
func safeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}

// transportError drops the *url.Error wrapper net/http puts around
// transport errors: its message holds the whole URL, query included.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}
