package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Limits bound what one request may ask of the FHIR API and how much it
// serves at once. A zero field means its DefaultLimits value. Each limit
// is named (in its comment) as the kapbridge serve flag that sets it; the
// environment variable is KAPBRIDGE_ and the name in capitals with
// underscores, and every error over a limit names it (fhir.LimitText).
type Limits struct {
	// MaxBodyBytes bounds a request body (max-body-bytes): 413.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the request line and headers
	// (max-header-bytes). net/http enforces it (serve sets
	// http.Server.MaxHeaderBytes from it) with a 431 that Listener turns
	// into an OperationOutcome naming it.
	MaxHeaderBytes int
	// MaxBundleEntries bounds the entries of a batch or transaction
	// (max-bundle-entries): 413 before any entry is processed.
	MaxBundleEntries int
	// MaxIssues bounds the issues one OperationOutcome lists (max-issues);
	// the last one listed then says how many more there were. One
	// resource's validation keeps at most 1,000.
	MaxIssues int
	// MaxInFlight bounds the requests served at once (max-in-flight), of
	// the FHIR API and the APIs beside it (Config.APIs) together.
	MaxInFlight int
	// BodyBudgetBytes bounds the bytes of request bodies being read and
	// processed at once, of every API together (body-budget-bytes): a
	// request reserves its Content-Length, or its API's largest body
	// (MaxBodyBytes on the FHIR API) when it does not say, until it is
	// answered; at most the whole budget. It is at least MaxBodyBytes.
	BodyBudgetBytes int64
	// QueueWait is how long a request waits for a place among
	// MaxInFlight, or for its share of BodyBudgetBytes, before it is
	// answered 503 with Retry-After (queue-wait).
	QueueWait time.Duration
	// Resource bounds a resource or Bundle body as it is parsed
	// (max-array-elements, max-nodes); its MaxBytes is MaxBodyBytes.
	Resource fhir.Limits
	// Search bounds one search, and the criteria of conditional
	// interactions (max-search-params, max-search-values,
	// max-search-total-values, max-sort-keys, max-includes,
	// max-search-chains).
	Search search.Limits
}

// DefaultLimits, and why each is what it is:
//
//   - MaxBodyBytes 16 MiB: FHIR bodies of a gateway are small (the
//     largest official example is 2.5 MB); Binary uploads fit.
//   - MaxHeaderBytes 64 KiB: a GET of the largest search the search limits
//     allow (300 values) is a few KiB; bearer tokens fit many times over.
//     net/http's 1 MiB default would let every in-flight request pin
//     a megabyte before any other limit applies.
//   - MaxBundleEntries 2,000: twice the 1,000-entry transaction the API is
//     sized for (BENCHMARKS.md: 181 ms). A batch of 100,000 GET entries
//     ran 155 s and took 2.5 GB before this limit.
//   - MaxIssues 100: enough to fix a resource in one round.
//   - MaxInFlight 256: eight times the 32 clients of the throughput
//     benchmarks. Past it a request would only wait for the store (one
//     SQLite writer, a PostgreSQL pool); a prompt 503 with Retry-After
//     tells a client to back off instead of timing it out.
//   - BodyBudgetBytes 64 MiB: four bodies of the maximum size at once. A
//     body costs about five times its size while parsed, validated and
//     stored (BENCHMARKS.md: 8 concurrent 16 MiB bodies took 479 MB
//     before this budget), so bodies take at most ~400 MB together.
//   - QueueWait 2 s: long enough for a queued body to see one of four
//     16 MiB bodies ahead of it finish (about 0.5 s each), short enough
//     that a client sees a 503 long before its own timeout.
//   - Resource: fhir.DefaultLimits; Search: search.DefaultLimits.
var DefaultLimits = Limits{
	MaxBodyBytes:     MaxBodyBytes,
	MaxHeaderBytes:   64 << 10,
	MaxBundleEntries: 2000,
	MaxIssues:        fhir.DefaultMaxIssues,
	MaxInFlight:      256,
	BodyBudgetBytes:  64 << 20,
	QueueWait:        2 * time.Second,
	Resource:         fhir.DefaultLimits,
	Search:           search.DefaultLimits,
}

// WithDefaults returns l with every zero field set to its DefaultLimits
// value (Resource and Search field by field), BodyBudgetBytes raised to
// MaxBodyBytes if below it, and Resource.MaxBytes set to MaxBodyBytes.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxBundleEntries <= 0 {
		l.MaxBundleEntries = d.MaxBundleEntries
	}
	if l.MaxIssues <= 0 {
		l.MaxIssues = d.MaxIssues
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = d.MaxInFlight
	}
	if l.BodyBudgetBytes <= 0 {
		l.BodyBudgetBytes = d.BodyBudgetBytes
	}
	l.BodyBudgetBytes = max(l.BodyBudgetBytes, l.MaxBodyBytes)
	if l.QueueWait <= 0 {
		l.QueueWait = d.QueueWait
	}
	if l.Resource.MaxArrayElements == 0 {
		l.Resource.MaxArrayElements = d.Resource.MaxArrayElements
	}
	if l.Resource.MaxNodes == 0 {
		l.Resource.MaxNodes = d.Resource.MaxNodes
	}
	l.Resource.MaxBytes = int(l.MaxBodyBytes)
	return l
}

// ---- admission: in-flight requests and the body budget ----

// admission holds the two semaphores every request passes.
type admission struct {
	inFlight *semaphore.Weighted
	budget   *semaphore.Weighted
}

func newAdmission(l Limits) *admission {
	return &admission{inFlight: semaphore.NewWeighted(int64(l.MaxInFlight)), budget: semaphore.NewWeighted(l.BodyBudgetBytes)}
}

// admit lets a request in when there is room among MaxInFlight and in the
// body budget for its body, waiting up to QueueWait; otherwise it answers
// 503 with Retry-After, naming the limit (FailBusy). A body declared over
// its API's MaxBodyBytes is refused (FailBodyTooLarge) before it is read.
// Every API's requests share the two places: the FHIR API's and the
// others' (Config.APIs).
func (s *Server) admit() gin.HandlerFunc {
	retryAfter := strconv.Itoa(max(1, int(s.lim.QueueWait.Round(time.Second)/time.Second)))
	return func(c *gin.Context) {
		r := c.Request
		maxBody := s.limitsOf(c).MaxBodyBytes
		if r.ContentLength > maxBody {
			fail(c, Failure{Kind: FailBodyTooLarge})
			return
		}
		busy := func(format string, args ...any) {
			c.Header("Retry-After", retryAfter)
			fail(c, Failure{Kind: FailBusy, Message: fmt.Sprintf(format, args...)})
		}
		wait, cancel := context.WithTimeout(r.Context(), s.lim.QueueWait)
		defer cancel()
		if err := s.admission.inFlight.Acquire(wait, 1); err != nil {
			busy("the server is busy: it serves at most %d requests at once (%s), and none finished within %s; retry after %s s",
				s.lim.MaxInFlight, fhir.LimitText("max-in-flight", int64(s.lim.MaxInFlight)), s.lim.QueueWait, retryAfter)
			return
		}
		defer s.admission.inFlight.Release(1)
		if n := bodyWeight(r, maxBody, s.lim.BodyBudgetBytes); n > 0 {
			if err := s.admission.budget.Acquire(wait, n); err != nil {
				busy("the server is busy reading other request bodies: this one (%d bytes reserved: its Content-Length, or without one the largest body its API takes) did not fit within %s of %s; retry after %s s",
					n, s.lim.QueueWait, fhir.LimitText("body-budget-bytes", s.lim.BodyBudgetBytes), retryAfter)
				return
			}
			defer s.admission.budget.Release(n)
		}
		c.Next()
	}
}

// bodyWeight is what a request's body reserves of the budget: its
// Content-Length, or the most a body may be when it is sent without one;
// at most the whole budget (an API's MaxBodyBytes may exceed it: a body
// that large waits until no other body is being read).
func bodyWeight(r *http.Request, maxBody, budget int64) int64 {
	switch {
	case r.ContentLength > 0:
		return min(r.ContentLength, budget)
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		return min(maxBody, budget)
	}
	return 0
}

// ---- the request line ----

// checkRequestPath refuses a path the router would otherwise have to
// guess at: one with an empty, "." or ".." segment (404: there is no FHIR
// interaction there, and the API does not clean paths or redirect), or
// holding U+0000 (400: no FHIR id or type can, and PostgreSQL text cannot
// hold it).
func checkRequestPath(c *gin.Context) {
	if err := checkPath(c.Request.Method, c.Request.URL.Path); err != nil {
		failStatic(c, err)
	}
}

func checkPath(method, p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return fhir.Errorf(fhir.IssueInvalid, "", "the request path %q holds U+0000 (NUL, %%00), which no FHIR type or id can", p)
	}
	if p == "/" {
		return nil
	}
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fhir.Errorf(fhir.IssueNotFound, "", "no FHIR interaction at %s %s: the path has an empty, \".\" or \"..\" segment (paths are taken as sent, never cleaned or redirected)", method, p)
		}
	}
	return nil
}
