package server

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// An API is served by the same Gin engine as the FHIR API, beside it (the
// FHIR API keeps the root), and behind the same middleware: the request id
// (X-Request-Id), the access log, panic recovery, admission (Limits:
// MaxInFlight, BodyBudgetBytes, QueueWait) and the request time limit.
// The API answers in its own format: its routes answer for themselves,
// and Fail answers what the shared middleware refuses on its paths.
// The practice API (adapters/practice) is one.
type API interface {
	// Prefix is where the API lives, e.g. "/practice": it owns the paths
	// under Prefix+"/" that have no empty, "." or ".." segment (a trailing
	// slash aside). Every other path is the FHIR API's, which answers one
	// with such a segment 404: paths are never cleaned or redirected.
	Prefix() string
	// Register adds the API's routes (its route table) to g, the group at
	// Prefix.
	Register(g *gin.RouterGroup)
	// Limits are the API's own bounds, which the shared middleware applies
	// to its requests. A zero field is the FHIR API's value.
	Limits() APILimits
	// Fail answers f, a request of the API's that the shared middleware
	// or the router answers instead of a route, in the API's format. It
	// writes the answer; the caller aborts the chain.
	Fail(c *gin.Context, f Failure)
}

// APILimits are an API's own bounds. A zero field means the FHIR API's
// (Limits.MaxBodyBytes, Config.RequestTimeout).
type APILimits struct {
	// MaxBodyBytes bounds a request body: one declared larger is refused
	// (FailBodyTooLarge) before it is read, and one sent without a
	// Content-Length reserves this much of the body budget
	// (Limits.BodyBudgetBytes). The API bounds what it reads itself.
	MaxBodyBytes int64
	// RequestTimeout is the time limit of one request: the request's
	// context ends then (FailTimeout if the route has not answered).
	RequestTimeout time.Duration
}

// Failure is what the shared middleware, or the router, answers instead of
// a route.
type Failure struct {
	Kind FailureKind
	// Message tells the client what happened where only the shared
	// middleware knows it: which limit was full (FailBusy), the request id
	// to quote (FailPanic). Empty otherwise: the API says it in its own
	// words, since it knows its routes and limits.
	Message string
	// Cause is for the log, never for the client: the panic value, or the
	// error of the request's context (context.DeadlineExceeded at the time
	// limit, context.Canceled when the client went away).
	Cause error
}

// FailureKind says what the shared middleware refused.
type FailureKind int

const (
	// FailNoRoute: no route of the API matches the path (404).
	FailNoRoute FailureKind = iota + 1
	// FailNoMethod: routes of the API match the path for other methods
	// only (405). Allow is set to those methods.
	FailNoMethod
	// FailBusy: no place among Limits.MaxInFlight, or in the body budget,
	// within Limits.QueueWait (503). Retry-After is set.
	FailBusy
	// FailBodyTooLarge: the body's Content-Length exceeds the API's
	// MaxBodyBytes (413); nothing of it was read.
	FailBodyTooLarge
	// FailTimeout: the request's time limit passed, or its client went
	// away, and its route returned without answering.
	FailTimeout
	// FailPanic: the route panicked (500). The stack is in the log.
	FailPanic
)

// ctxAPI is the Gin context key of the API a request's path belongs to.
const ctxAPI = "kapbridge.api"

// apiOf returns the API the request's path belongs to (ownAPI, the first
// middleware, records it).
func apiOf(c *gin.Context) API {
	if a, ok := c.Get(ctxAPI); ok {
		return a.(API)
	}
	return nil
}

// limitsOf returns the limits of the API of c, the FHIR API's in place of
// a zero field.
func (s *Server) limitsOf(c *gin.Context) APILimits {
	l := apiOf(c).Limits()
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = s.lim.MaxBodyBytes
	}
	if l.RequestTimeout <= 0 {
		l.RequestTimeout = s.timeout
	}
	return l
}

// ownAPI is middleware: it records which API the request's path belongs
// to, for the middleware after it (limits, time limit, the format of
// their refusals).
func (s *Server) ownAPI(c *gin.Context) {
	c.Set(ctxAPI, s.owner(c.Request.URL.Path))
}

// owner returns the API path belongs to: an API whose prefix it is under
// (API.Prefix), else the FHIR API.
func (s *Server) owner(path string) API {
	for _, a := range s.apis {
		if strings.HasPrefix(path, a.Prefix()+"/") && !hasDotOrEmptySegment(path) {
			return a
		}
	}
	return s.fhir
}

// hasDotOrEmptySegment reports a "." or ".." segment, or an empty one
// other than after a trailing slash.
func hasDotOrEmptySegment(p string) bool {
	for _, s := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/"), "/") {
		if s == "" || s == "." || s == ".." {
			return true
		}
	}
	return false
}

// owns is the first middleware of an API's group: Gin's router prefers a
// static segment but falls back to a parameter, so a path of one API can
// reach a route of another (GET /practice/v1 matches the FHIR read
// /:type/:id; GET /practice/v1/records/./x the practice API's
// /practice/v1/records/:kind/:id, though a "." makes it the FHIR API's).
// Such a request is answered by the API it belongs to, as no route.
func (s *Server) owns(a API) gin.HandlerFunc {
	return func(c *gin.Context) {
		if apiOf(c) != a {
			s.noRoute(c)
		}
	}
}

// noRoute answers a request that no route of its API takes: FailNoMethod
// with the methods of the API's routes at the path in Allow, or
// FailNoRoute. Only the API's own routes count: Gin's Allow, and its
// choice between its 404 and 405, count every API's.
func (s *Server) noRoute(c *gin.Context) {
	a, method, path := apiOf(c), c.Request.Method, c.Request.URL.Path
	var allow []string
	for _, m := range s.methods {
		if m != method && slices.ContainsFunc(s.patterns[a], func(p routePattern) bool { return p.method == m && p.matches(path) }) {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		c.Writer.Header().Del("Allow")
		fail(c, Failure{Kind: FailNoRoute})
		return
	}
	c.Header("Allow", strings.Join(allow, ", "))
	fail(c, Failure{Kind: FailNoMethod})
}

// routePattern is a route as Gin holds it: a method and a path pattern.
type routePattern struct{ method, path string }

// matches reports whether Gin would match path against the pattern:
// ":name" is one segment, not empty; "*name" is the rest, after a slash.
func (p routePattern) matches(path string) bool {
	pat, segs := strings.Split(p.path, "/"), strings.Split(path, "/")
	for i, ps := range pat {
		if strings.HasPrefix(ps, "*") {
			return len(segs) > i
		}
		if i >= len(segs) || ps != segs[i] && (!strings.HasPrefix(ps, ":") || segs[i] == "") {
			return false
		}
	}
	return len(pat) == len(segs)
}

// fail answers f in the format of the API the request belongs to, and ends
// the chain.
func fail(c *gin.Context, f Failure) {
	apiOf(c).Fail(c, f)
	c.Abort()
}

// RequestID returns the id of the request c (echoed as X-Request-Id and
// in every log line about the request).
func RequestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// fhirAPI is the FHIR API as an API: the route table at the root, behind
// the FHIR-only middleware (the path checks, content negotiation, the
// conformance resources loaded), answering OperationOutcomes.
type fhirAPI struct{ s *Server }

func (fhirAPI) Prefix() string { return "" }

func (a fhirAPI) Limits() APILimits {
	return APILimits{MaxBodyBytes: a.s.lim.MaxBodyBytes, RequestTimeout: a.s.timeout}
}

func (a fhirAPI) Register(g *gin.RouterGroup) {
	s := a.s
	g.Use(checkRequestPath, negotiate(s.lim.MaxBodyBytes), s.authorize, s.conformanceReady)
	for _, rt := range s.table {
		if typed(rt.path) {
			g.Handle(rt.method, rt.path, knownType, s.serve(rt.handle))
		} else {
			g.Handle(rt.method, rt.path, s.serve(rt.handle))
		}
	}
}

func (a fhirAPI) Fail(c *gin.Context, f Failure) {
	s := a.s
	switch f.Kind {
	case FailNoRoute, FailNoMethod:
		// The checks of the FHIR group come first, as on a route: a path
		// with a "." segment is a 404 naming it (Allow stays, as it
		// always did), an XML Accept a 406.
		for _, check := range []gin.HandlerFunc{checkRequestPath, negotiate(s.lim.MaxBodyBytes)} {
			if check(c); c.IsAborted() {
				return
			}
		}
		if f.Kind == FailNoMethod {
			failStatic(c, noMethod(c.Request.Method, c.Request.URL.Path))
		} else {
			failStatic(c, noRoute(c.Request.Method, c.Request.URL.Path))
		}
	case FailBusy:
		// Not s.fail, which logs every 5xx as a failure: shedding load is
		// the server working as configured, and an overloaded server
		// should not also write an error line per request (the access log
		// has the 503).
		failStatic(c, fhir.Errorf(fhir.IssueTransient, "", "%s", f.Message).WithStatus(http.StatusServiceUnavailable))
	case FailBodyTooLarge:
		s.fail(c, fhir.Errorf(fhir.IssueTooLong, "", "the request body of %d bytes exceeds %s", c.Request.ContentLength,
			fhir.LimitText("max-body-bytes", s.lim.MaxBodyBytes)).WithStatus(http.StatusRequestEntityTooLarge))
	case FailTimeout:
		s.fail(c, f.Cause) // the time limit's outcome (timeoutError)
	default:
		s.fail(c, fhir.Errorf(fhir.IssueException, "", "%s", f.Message))
	}
}
