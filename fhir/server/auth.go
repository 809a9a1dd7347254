package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
)

// Authorization (issue 14): with Config.Auth set, every request but the
// public paths needs a bearer token the Verifier accepts (401 with
// WWW-Authenticate otherwise), and the token's scopes must allow every
// type the request could reach (auth.Decide, 403 otherwise), both decided
// before a handler runs, so nothing stored is read or written for a
// refused request and a refusal says nothing about what exists. The
// client's practice is the request's tenant (ids of other practices answer
// 404); the audit trail is its own tenant (auth.AuditTenant).

// Verifier checks an access token.
type Verifier interface {
	// Verify returns the principal the token stands for, or an error
	// (logged, never sent: the client is told only that the token is
	// not accepted).
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// Auth configures authorization (Config.Auth). Nil: none, every request
// is served (the dev mode the command line warns about).
type Auth struct {
	Verifier Verifier
	// Gateway, when set, is served beside the API: its token endpoint
	// (auth.TokenPath), JWK Set (auth.JWKSPath) and
	// /.well-known/smart-configuration.
	Gateway *auth.Gateway
	// Public are paths served without a token beyond /metadata,
	// /.well-known/ and the Gateway's: exact paths, or prefixes ending in
	// "/".
	Public []string
	// APIScopes names, for the prefix of an API beside the FHIR API, the
	// scope a token needs for it (e.g. "/practice": "practice-api"). An
	// API without an entry needs a valid token only.
	APIScopes map[string]string
	// Audit, when set, gets an audit record of every request but the
	// public ones (auth_audit.go).
	Audit AuditRecorder
	// TrustedProxies are the addresses or CIDRs of proxies whose
	// X-Forwarded-For names the client in audit records; none by default.
	TrustedProxies []string
	// RateLimit is how many requests a second each client may send on
	// average (unauthenticated callers of the token endpoint are counted
	// by address), in bursts of RateBurst; 0: no limit
	// (auth_hardening.go).
	RateLimit float64
	RateBurst int
	// CORSOrigins are the browser origins allowed to call the API; none
	// by default, so no CORS headers are sent.
	CORSOrigins []string
}

// Gin context key of the request's principal.
const ctxPrincipal = "kapbridge.principal"

// PrincipalOf returns who the request c comes from: nil without
// authorization or on a public path.
func PrincipalOf(c *gin.Context) *auth.Principal {
	if p, ok := c.Get(ctxPrincipal); ok {
		return p.(*auth.Principal)
	}
	return nil
}

func (s *Server) public(path string) bool {
	if path == "/metadata" || strings.HasPrefix(path, "/.well-known/") || path == auth.TokenPath || path == auth.JWKSPath {
		return true
	}
	for _, p := range s.auth.Public {
		if path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// authenticate is middleware: the bearer token of every non-public
// request, verified (401 otherwise), and an API's own scope and tenant
// checked (403).
func (s *Server) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.auth == nil || s.public(c.Request.URL.Path) {
			return
		}
		raw := bearer(c.Request)
		if raw == "" {
			c.Header("WWW-Authenticate", `Bearer realm="kapbridge", scope="system/*.rs"`)
			s.refuse(c, fhir.Errorf(fhir.IssueLogin, "", "this API needs an access token: ask %s for one (SMART Backend Services: client_credentials with a private_key_jwt assertion) and send it as Authorization: Bearer", s.base+auth.TokenPath).WithStatus(http.StatusUnauthorized), nil)
			return
		}
		p, err := s.auth.Verifier.Verify(c.Request.Context(), raw)
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="kapbridge", error="invalid_token", error_description="the access token is invalid, expired or revoked"`)
			s.refuse(c, fhir.Errorf(fhir.IssueLogin, "", "the access token is not accepted: invalid, expired, or its client disabled; ask %s for a new one", s.base+auth.TokenPath).WithStatus(http.StatusUnauthorized).Wrap(err), nil)
			return
		}
		c.Set(ctxPrincipal, p)
		if a := apiOf(c); a != nil && a.Prefix() != "" {
			if sc := s.auth.APIScopes[a.Prefix()]; sc != "" && !slices.Contains(p.Scopes.Other, sc) {
				s.refuse(c, fhir.Errorf(fhir.IssueForbidden, "", "the access token's scopes do not include %q, which %s needs", sc, a.Prefix()).WithStatus(http.StatusForbidden), p)
				return
			}
			if p.Recipient != "" && !strings.HasPrefix(a.Prefix(), "/auth") && a.Prefix() != "/.well-known" {
				s.refuse(c, fhir.Errorf(fhir.IssueForbidden, "", "client %q is a prescriber's: %s is the practice's own", p.ClientID, a.Prefix()).WithStatus(http.StatusForbidden), p)
				return
			}
		}
	}
}

// authorize is FHIR-group middleware, after content negotiation (so the
// body is bounded): the scope decision for the request, and for a Bundle
// for each of its entries, before the handler runs.
func (s *Server) authorize(c *gin.Context) {
	p := PrincipalOf(c)
	if s.auth == nil || p == nil {
		return
	}
	call := auth.Call{Method: c.Request.Method, Path: c.Request.URL.Path, Query: c.Request.URL.Query(),
		IfNoneExist: c.GetHeader("If-None-Exist")}
	if c.Request.Method == http.MethodPost && c.Request.Body != nil {
		switch {
		case strings.HasSuffix(c.Request.URL.Path, "/_search"):
			// A form the handler could read but this cannot is decided as
			// one that reaches every type (Opaque).
			body, err := peekBody(c)
			form, ferr := url.ParseQuery(string(body))
			if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt == "application/x-www-form-urlencoded" {
				if err != nil || ferr != nil {
					call.Opaque = true
				}
				for k, vs := range form {
					call.Query[k] = append(call.Query[k], vs...)
				}
			}
		case strings.Trim(c.Request.URL.Path, "/") == "":
			// Read with the parser the Bundle handler uses, so both see the
			// same entries; a body it cannot read is decided as one whose
			// entries may reach every type (Opaque).
			body, err := peekBody(c)
			entries, kind, berr := bundleCalls(s.base, body)
			if err != nil || berr != nil {
				call.Opaque = true
			}
			call.Entries = entries
			if len(entries) > 0 { // for the audit of each entry
				c.Set(ctxBundleCalls, entries)
				c.Set(ctxBundleKind, kind)
			}
		}
	}
	if err := auth.Decide(p.Scopes, call); err != nil {
		s.refuse(c, err, p)
		return
	}
	if p.Tenant != fhir.DefaultTenant {
		// Another practice reads the shared conformance resources of the
		// default one, and only reads them (auth/shared.go).
		if err := auth.DecideShared(call); err != nil {
			s.refuse(c, err, p)
			return
		}
	}
	if p.Recipient != "" { // a prescriber's client: the patient's Consent decides (auth_consent.go)
		if err := s.consentGate(c, p); err != nil {
			s.fail(c, err)
		}
	}
}

// peekBody reads the request body (bounded by negotiate) and puts it back
// for the handler.
func peekBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	c.Request.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
	return b, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

// bundleCalls reads the request of each entry of a batch or transaction
// Bundle, and its type.
func bundleCalls(base string, body []byte) ([]auth.Call, string, error) {
	lim := fhir.StoredLimits
	root, err := fhir.ParseJSON(body, lim)
	if err != nil {
		return nil, "", err
	}
	if root.GetString("resourceType") != "Bundle" {
		return nil, "", errors.New("not a Bundle")
	}
	kind := root.GetString("type")
	var out []auth.Call
	for _, e := range list(root.Get("entry")) {
		req := e.Get("request")
		if req == nil {
			continue // the handler refuses an entry without a request
		}
		method, raw := req.GetString("method"), req.GetString("url")
		if method == "" || raw == "" {
			return nil, kind, errors.New("an entry's request has no method or url")
		}
		if strings.HasPrefix(raw, base+"/") {
			raw = strings.TrimPrefix(raw, base)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, kind, err
		}
		path := u.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		out = append(out, auth.Call{Method: strings.ToUpper(method), Path: path, Query: u.Query(), IfNoneExist: req.GetString("ifNoneExist")})
	}
	return out, kind, nil
}

// refuse answers err (401 or 403) as an OperationOutcome and stops the
// chain. The principal, when known, is for the audit record.
func (s *Server) refuse(c *gin.Context, err error, p *auth.Principal) {
	fe := fhir.AsError(err)
	writeJSON(c, fhir.StatusOf(fe), fhir.OperationOutcome(fe.Issues))
	c.Abort()
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// principalTenant is the tenant of c's principal: the audit trail's for
// AuditEvent, the client's practice otherwise; "" without a principal.
func principalTenant(c *gin.Context) string {
	p := PrincipalOf(c)
	if p == nil {
		return ""
	}
	if c.Param("type") == auth.AuditType {
		return auth.AuditTenant(p.Tenant)
	}
	return p.Tenant
}
