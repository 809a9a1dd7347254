package server

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/auth"
)

// One AuditEvent per entry of a batch or transaction, beside the Bundle
// request's own: the entry's interaction, resource and outcome, linked to
// the Bundle's event by the request id they share. The Bundle handler
// records what became of each entry it ran (entryAudit); an entry of a
// Bundle refused before it ran (for the token's scopes, or as a whole) is
// audited from the entries the scope decision read (refusedEntries).

// Gin context keys: the Bundle's type, the handler's entry records, and
// the entries the scope decision read.
const (
	ctxBundleKind   = "kapbridge.bundle-kind"
	ctxEntryAudit   = "kapbridge.entry-audit"
	ctxBundleCalls  = "kapbridge.bundle-calls"
	noteRolledBack  = "not applied: the transaction failed and was rolled back"
	noteEntryFailed = "this entry failed, so the transaction was rolled back"
)

// entryAudit is the audit record of each entry the Bundle handler ran (or
// did not, when a transaction failed: err): method, path, resource,
// status. The middleware adds who, when and where.
func entryAudit(entries []*bundleEntryReq, err error) []audit.Record {
	out := make([]audit.Record, len(entries))
	failed := 0
	if err != nil {
		failed = fhir.StatusOf(fhir.AsError(err))
	}
	for i, e := range entries {
		r := audit.Record{Entry: i + 1, Method: e.method, Path: entryPath(e), Type: e.typ, ID: e.id}
		if e.out.ID != "" {
			r.ID = e.out.ID
		}
		switch {
		case e.err != nil:
			r.Status = fhir.StatusOf(e.err)
			if failed != 0 {
				r.Note = noteEntryFailed
			}
		case failed != 0:
			r.Status, r.Note = failed, noteRolledBack
		case e.got != nil:
			r.Status = e.gotStatus
		case e.status != 0:
			r.Status = e.status
		default:
			r.Status = http.StatusOK
		}
		out[i] = r
	}
	return out
}

// entryPath is the path an entry's request.url names, relative to the
// base, without its query (which can carry PHI).
func entryPath(e *bundleEntryReq) string {
	if e.path != "" {
		p, _, _ := strings.Cut(e.path, "?")
		return "/" + strings.TrimPrefix(p, "/")
	}
	if e.typ == "" {
		return "/"
	}
	if e.id != "" {
		return "/" + e.typ + "/" + e.id
	}
	return "/" + e.typ
}

// refusedEntries is the audit record of each entry of a Bundle refused
// before its handler ran (status is the Bundle's answer): an entry the
// token's scopes do not permit as refused 403, the others as not
// processed. A Bundle of more entries than the server takes is audited as
// one request only, so a refused Bundle cannot make the trail write
// thousands of events.
func (s *Server) refusedEntries(c *gin.Context, status int) []audit.Record {
	v, ok := c.Get(ctxBundleCalls)
	if !ok {
		return nil
	}
	calls := v.([]auth.Call)
	if len(calls) > s.lim.MaxBundleEntries {
		return nil
	}
	p := PrincipalOf(c)
	out := make([]audit.Record, len(calls))
	for i, e := range calls {
		r := audit.Record{Entry: i + 1, Method: e.Method, Path: e.Path, Status: status,
			Note: "not processed: the Bundle was refused"}
		segs := strings.Split(strings.Trim(e.Path, "/"), "/")
		if len(segs) >= 1 && fhir.IsResourceType(segs[0]) {
			r.Type = segs[0]
			if len(segs) >= 2 {
				r.ID = segs[1]
			}
		}
		if r.Type == auth.AuditType {
			r.Status, r.Note = http.StatusForbidden, "refused: the audit trail is not read or written in a Bundle"
		} else if p != nil {
			err := auth.Decide(p.Scopes, e)
			if err == nil && p.Tenant != fhir.DefaultTenant {
				err = auth.DecideShared(e)
			}
			if err != nil {
				r.Status, r.Note = http.StatusForbidden, "refused: the access token's scopes do not permit it"
			}
		}
		out[i] = r
	}
	return out
}
