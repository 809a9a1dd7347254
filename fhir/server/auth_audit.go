package server

import (
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/auth"
)

// AuditRecorder takes the audit record of each request (audit.Trail).
type AuditRecorder interface {
	Record(audit.Record) error
}

// auditTrail is middleware: after each request but the public documents
// (/metadata, /.well-known/, the JWK Set, Public paths; the token
// endpoint is audited), its audit record: who, what, when, the outcome,
// and the client's address as Gin's ClientIP gives it (X-Forwarded-For
// only from Auth.TrustedProxies).
func (s *Server) auditTrail() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.auth == nil || s.auth.Audit == nil {
			return
		}
		path := c.Request.URL.Path
		if path != auth.TokenPath && s.public(path) {
			return
		}
		c.Next()
		r := audit.Record{When: s.now(), RequestID: c.GetString(ctxRequestID), Method: c.Request.Method, Path: path,
			Status: c.Writer.Status(), Address: c.ClientIP(), Type: c.Param("type"), ID: c.Param("id")}
		if p := PrincipalOf(c); p != nil {
			r.ClientID, r.Tenant = p.ClientID, p.Tenant
		}
		if r.ID == "" && r.Type != "" {
			// A create names its new resource in Location only.
			if loc := c.Writer.Header().Get("Location"); loc != "" {
				rest := strings.TrimPrefix(loc, s.base+"/"+r.Type+"/")
				if rest != loc {
					r.ID, _, _ = strings.Cut(rest, "/")
				}
			}
		}
		r.Bundle = c.GetString(ctxBundleKind)
		_ = s.auth.Audit.Record(r) // waits when the trail is behind; logs what it cannot write
		// A batch or transaction: an event per entry too (audit_entries.go).
		var entries []audit.Record
		if v, ok := c.Get(ctxEntryAudit); ok {
			entries = v.([]audit.Record)
		} else if r.Status >= 400 {
			entries = s.refusedEntries(c, r.Status)
		}
		for _, e := range entries {
			e.When, e.RequestID, e.Address, e.ClientID, e.Tenant, e.Bundle = r.When, r.RequestID, r.Address, r.ClientID, r.Tenant, r.Bundle
			_ = s.auth.Audit.Record(e)
		}
	}
}

// trustedProxies are the proxies whose X-Forwarded-For is believed
// (Auth.TrustedProxies); none without authorization.
func (s *Server) trustedProxies() []string {
	if s.auth == nil {
		return nil
	}
	return s.auth.TrustedProxies
}
