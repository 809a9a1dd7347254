package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/auth"
)

// Request is one FHIR interaction as the handlers take it: what an HTTP
// request says, without HTTP or Gin. The routes build one from each HTTP
// request; Server.Do takes one from the batch and transaction runner and
// from other layers in the process.
type Request struct {
	Method string
	// URL holds the path (decoded, as routed) and the raw query.
	URL *url.URL
	// Header holds the request headers the interactions read (Prefer,
	// If-Match, If-None-Exist, If-None-Match, Content-Type, Accept).
	Header http.Header
	// Body is the request body; nil is none. The HTTP routes bound it at
	// Limits.MaxBodyBytes.
	Body io.Reader
	// Tenant owns the resources the request is about; "" means
	// fhir.DefaultTenant.
	Tenant string
	// Audience is whom the answer goes to (privacy.go). The zero Audience
	// is the public one, which receives no withheld resource.
	Audience fhir.Audience
	// RequestID names the request in the log.
	RequestID string

	params routeParams // the path parameters, from the route

	// bundleKind and entryAudit are set by the Bundle handler: the
	// Bundle's type, and the audit record of each of its entries
	// (audit_entries.go).
	bundleKind string
	entryAudit []audit.Record
}

// routeParams are the parameters of a route's path.
type routeParams struct {
	typ, id, vid, compartment string
}

func (p *routeParams) set(name, value string) {
	switch name {
	case "type":
		p.typ = value
	case "id":
		p.id = value
	case "vid":
		p.vid = value
	case "compartment":
		p.compartment = value
	}
}

func (r *Request) tenant() string {
	if r.Tenant == "" {
		return fhir.DefaultTenant
	}
	return r.Tenant
}

// key is the resource the path names.
func (r *Request) key() fhir.Key {
	return fhir.Key{Tenant: r.tenant(), Type: r.params.typ, ID: r.params.id}
}

// Response is a handler's answer.
type Response struct {
	Status int
	// Header holds ETag, Last-Modified, Location and the like. It goes
	// with an error's OperationOutcome too: the 410 of a deleted
	// resource names its deletion's version.
	Header http.Header
	// Body is FHIR JSON, sent in the JSON type the request negotiated;
	// nil is no body (204, 304, Prefer: return=minimal).
	Body []byte
	// ContentType, when set, is sent instead of the negotiated type (the
	// documents served beside the API).
	ContentType string
}

// handler is one interaction: a plain function of the request. A non-nil
// error is answered as an OperationOutcome with the status its code maps
// to (fhir.StatusOf); a Response beside it carries headers for that
// answer.
type handler func(ctx context.Context, r *Request) (*Response, error)

// serve answers an HTTP request with h.
func (s *Server) serve(h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := &Request{Method: c.Request.Method, URL: c.Request.URL, Header: c.Request.Header, Body: c.Request.Body,
			Tenant: tenantOf(c), Audience: audienceOf(c), RequestID: c.GetString(ctxRequestID),
			params: routeParams{typ: c.Param("type"), id: c.Param("id"), vid: c.Param("vid"), compartment: c.Param("compartment")}}
		r.Tenant = sharedTenant(r)
		resp, err := h(c.Request.Context(), r)
		if r.bundleKind != "" {
			c.Set(ctxBundleKind, r.bundleKind)
		}
		if r.entryAudit != nil {
			c.Set(ctxEntryAudit, r.entryAudit)
		}
		if resp != nil {
			for k, vs := range resp.Header {
				c.Writer.Header()[k] = vs
			}
		}
		switch {
		case err != nil:
			s.fail(c, err)
		case resp.Body == nil:
			c.Status(resp.Status)
			c.Writer.WriteHeaderNow()
		case resp.ContentType != "":
			c.Data(resp.Status, resp.ContentType, resp.Body)
		default:
			writeJSON(c, resp.Status, resp.Body)
		}
	}
}

// Do runs one interaction in the process, as the API would answer it over
// HTTP: the same checks of the path, the format (_format, Accept) and the
// body's Content-Type, the same route table and handlers. What belongs to
// HTTP is left out: admission (Limits.MaxInFlight, the body budget), the
// time limit (ctx bounds the interaction), the access log and panic
// recovery. The error is the interaction's OperationOutcome (render it
// with fhir.AsError); the Response beside an error carries its headers.
func (s *Server) Do(ctx context.Context, r *Request) (*Response, error) {
	if err := checkPath(r.Method, r.URL.Path); err != nil {
		return nil, err
	}
	if _, err := responseFormat(r.URL.Query().Get("_format"), r.Header.Get("Accept")); err != nil {
		return nil, err
	}
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		if err := checkContentType(r.Header.Get("Content-Type"), r.URL.Path); err != nil {
			return nil, err
		}
	}
	if err := s.conformanceLoaded(ctx); err != nil {
		return nil, err
	}
	h, params, err := s.match(r.Method, r.URL.Path)
	if err != nil {
		return nil, err
	}
	in := *r
	in.params = params
	in.Tenant = sharedTenant(&in)
	return h(ctx, &in)
}

// sharedTenant is the tenant r reads: the default practice for a read of
// the conformance resources every practice shares (auth.SharedRead),
// r's own otherwise.
func sharedTenant(r *Request) string {
	if r.params.compartment != "" {
		return r.Tenant
	}
	return auth.TenantFor(r.Tenant, r.Method, r.params.typ, strings.HasSuffix(r.URL.Path, "/_search"))
}

// doEntry is Do for an entry of a Bundle: a panic in the interaction is
// that entry's 500 (logged with its stack, as recoverPanic does for a
// request), not the whole Bundle's.
func (s *Server) doEntry(ctx context.Context, r *Request) (resp *Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok && e == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic", "request_id", r.RequestID, "panic", p, "stack", stack())
			resp, err = nil, fhir.Errorf(fhir.IssueException, "", "internal error (request id %s)", r.RequestID)
		}
	}()
	return s.Do(ctx, r)
}

// document serves d as it is.
func document(d Document) handler {
	return func(context.Context, *Request) (*Response, error) {
		return &Response{Status: http.StatusOK, ContentType: d.ContentType, Body: d.Body}, nil
	}
}

// outcome renders err, the answer to the request id at path, as the
// status and OperationOutcome it is answered with: the time limit's
// outcome when err comes from ctx ending (logged, as a request stopped at
// its limit is), and with the cause of a 5xx logged, never sent.
func (s *Server) outcome(ctx context.Context, id, path string, err error) (int, []byte) {
	if te := s.timeoutError(ctx, err); te != nil {
		s.logTimeout(ctx, id, path, te)
		err = te
	}
	fe := fhir.AsError(err)
	status := fhir.StatusOf(fe)
	if status >= 500 {
		s.log.LogAttrs(ctx, slog.LevelError, "request failed",
			slog.String("request_id", id), slog.Any("cause", fe.Err))
	}
	return status, fhir.OperationOutcomeMax(fe.Issues, s.lim.MaxIssues)
}
