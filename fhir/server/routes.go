package server

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// route is one FHIR interaction: a method and a path pattern (Gin's
// syntax: ":name" is one segment) answered by a handler.
type route struct {
	method, path string
	handle       handler
}

// routeTable is the whole FHIR REST surface in one table. Gin serves it
// over HTTP (routes); Server.Do serves it in the process (batch and
// transaction GET entries), matching paths the same way (match).
func (s *Server) routeTable() []route {
	rs := []route{
		{http.MethodGet, "/metadata", s.capabilities},
		{http.MethodGet, "/_history", s.systemHistory}, // system history
	}
	for _, d := range s.docs {
		rs = append(rs, route{http.MethodGet, d.Path, document(d)})
	}
	return append(rs,
		route{http.MethodPost, "/", s.bundle},                                  // batch and transaction Bundles
		route{http.MethodGet, "/:type", s.search},                              // search
		route{http.MethodPost, "/:type/_search", s.searchPost},                 // search with a form body
		route{http.MethodGet, "/:type/_history", s.typeHistory},                // type history
		route{http.MethodGet, "/:type/:id/:compartment", s.compartment},        // GET /Patient/{id}/{type}, /Patient/{id}/$everything
		route{http.MethodPost, "/:type", s.create},                             // create, conditional create (If-None-Exist)
		route{http.MethodPut, "/:type", s.conditionalUpdate},                   // PUT /Type?identifier=system|value
		route{http.MethodPost, "/:type/:id", s.typeOperation},                  // POST /Type/$validate
		route{http.MethodPost, "/:type/:id/:compartment", s.instanceOperation}, // POST /Type/id/$validate
		route{http.MethodGet, "/:type/:id", s.read},                            // read
		route{http.MethodPut, "/:type/:id", s.update},                          // update, update-as-create
		route{http.MethodDelete, "/:type/:id", s.delete},                       // delete
		route{http.MethodPatch, "/:type/:id", s.patchInstance},                 // JSON Patch, FHIRPath Patch
		route{http.MethodPatch, "/:type", s.conditionalPatch},                  // PATCH /Type?identifier=system|value
		route{http.MethodDelete, "/:type", s.conditionalDelete},                // DELETE /Type?criteria
		route{http.MethodGet, "/:type/:id/_history", s.history},                // instance history
		route{http.MethodGet, "/:type/:id/_history/:vid", s.vread},             // vread
	)
}

// routes builds the one Gin engine: the FHIR route table at the root and
// the route table of each other API at its prefix (Config.APIs), behind
// one middleware chain. The chain is shared; what it refuses is answered
// in the format of the API the path belongs to (ownAPI, API.Fail), with
// that API's own body and time limits (API.Limits). The FHIR-only
// middleware (path checks, content negotiation, conformance resources) is
// on the FHIR group (fhirAPI.Register).
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// X-Forwarded-For names the client only when it comes from a proxy
	// configured as trusted (Auth.TrustedProxies), none by default.
	_ = r.SetTrustedProxies(s.trustedProxies())
	// The audit record wraps admission and panic recovery, so requests
	// shed under load (503) and panics (500) are audited too.
	r.Use(requestID(), s.securityHeaders(), s.ownAPI, s.accessLog(), s.auditTrail(), s.recoverPanic(), s.admit())
	// auth_hardening.go, auth.go: CORS for configured origins, a bearer
	// token on every request but the public ones, the rate per client.
	r.Use(s.cors(), s.authenticate(), s.rateLimit())
	r.Use(s.requestDeadline()) // every handler's context ends at the request's time limit

	// The FHIR API first, so that its methods are listed in Allow in the
	// order they always were (the order of Gin's trees, made as each
	// method's first route is added).
	s.patterns = map[API][]routePattern{}
	for _, a := range append([]API{s.fhir}, s.apis...) {
		known := map[routePattern]bool{}
		for _, ri := range r.Routes() {
			known[routePattern{ri.Method, ri.Path}] = true
		}
		a.Register(r.Group(cmp.Or(a.Prefix(), "/"), s.owns(a)))
		for _, ri := range r.Routes() {
			if rt := (routePattern{ri.Method, ri.Path}); !known[rt] {
				s.patterns[a] = append(s.patterns[a], rt)
			}
		}
	}
	for _, ri := range r.Routes() { // in the order of Gin's trees
		if !slices.Contains(s.methods, ri.Method) {
			s.methods = append(s.methods, ri.Method)
		}
	}
	r.NoRoute(s.noRoute)
	r.NoMethod(s.noRoute)
	return r
}

// typed reports whether the pattern's first segment is the resource type,
// which must be an R4 one (knownType).
func typed(pattern string) bool { return strings.HasPrefix(pattern, "/:type") }

// knownType answers 404 for a path whose first segment is not an R4
// resource type.
func knownType(c *gin.Context) {
	if err := checkType(c.Param("type")); err != nil {
		failStatic(c, err)
	}
}

func checkType(t string) error {
	if !fhir.IsResourceType(t) {
		return fhir.Errorf(fhir.IssueNotFound, "", "unknown resource type %q", t)
	}
	return nil
}

func noRoute(method, path string) error {
	return fhir.Errorf(fhir.IssueNotFound, "", "no FHIR interaction at %s %s", method, path)
}

func noMethod(method, path string) error {
	return fhir.Errorf(fhir.IssueNotSupported, "", "method %s is not supported at %s", method, path).WithStatus(http.StatusMethodNotAllowed)
}

// match finds the route for method and path as Gin's router does: of the
// patterns that match, the one whose first differing segment is static
// wins ("/Patient/_history" is type history, not a read of the id
// "_history"); no match for method but one for another method is a 405,
// none at all a 404; a typed route needs an R4 type.
func (s *Server) match(method, path string) (handler, routeParams, error) {
	segs := strings.Split(path, "/")
	var best *route
	var bestParams routeParams
	otherMethod := false
	for i := range s.table {
		rt := &s.table[i]
		ps, ok := matchPattern(rt.path, segs)
		switch {
		case !ok:
		case rt.method != method:
			otherMethod = true
		case best == nil || morePrecise(rt.path, best.path):
			best, bestParams = rt, ps
		}
	}
	switch {
	case best == nil && otherMethod:
		return nil, routeParams{}, noMethod(method, path)
	case best == nil:
		return nil, routeParams{}, noRoute(method, path)
	case typed(best.path):
		if err := checkType(bestParams.typ); err != nil {
			return nil, routeParams{}, err
		}
	}
	return best.handle, bestParams, nil
}

// matchPattern matches the segments of a path against a pattern.
func matchPattern(pattern string, segs []string) (routeParams, bool) {
	pat := strings.Split(pattern, "/")
	var ps routeParams
	if len(pat) != len(segs) {
		return ps, false
	}
	for i, p := range pat {
		name, param := strings.CutPrefix(p, ":")
		switch {
		case !param && p != segs[i]:
			return ps, false
		case !param:
		case segs[i] == "":
			return ps, false // Gin's parameters are never empty
		default:
			ps.set(name, segs[i])
		}
	}
	return ps, true
}

// morePrecise reports whether pattern a wins over b where both match:
// at the first segment where they differ, a's is static.
func morePrecise(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := range min(len(as), len(bs)) {
		aParam, bParam := strings.HasPrefix(as[i], ":"), strings.HasPrefix(bs[i], ":")
		if aParam != bParam {
			return !aParam
		}
	}
	return false
}
