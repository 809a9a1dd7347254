package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Call is one FHIR interaction as the scope decision sees it: what the
// request line and headers say, and for a batch or transaction Bundle its
// entries. Nothing stored is needed to decide, so the decision comes
// before any data is touched and a refusal reveals nothing.
type Call struct {
	Method string
	// Path is relative to the FHIR base: "/Patient/1", "/", "/_history".
	Path  string
	Query url.Values
	// IfNoneExist is the If-None-Exist header (a conditional create
	// searches).
	IfNoneExist string
	// Entries are the requests of a batch or transaction Bundle (POST /).
	Entries []Call
	// Opaque says the body could not be read here (a Bundle or search
	// form): it is decided as reaching every type with every permission.
	Opaque bool
}

// AuditType is the resource type of the audit trail: written by the
// gateway only, readable only with a scope naming it (system/AuditEvent.rs),
// never by a wildcard scope.
const AuditType = "AuditEvent"

// AuditTenant is the tenant holding the audit trail of tenant: apart from
// its resources, so no search, include, history or $everything of the
// practice's data reaches an AuditEvent, and nothing written to the
// practice's data can be taken for one.
func AuditTenant(tenant string) string { return tenant + "#audit" }

// Decide says whether scopes allow c: nil, or a 403 *fhir.Error naming
// what is not permitted. Every type the call could return or examine
// counts: the searched type, _include targets, _revinclude sources, chain
// and _has types, the types of $everything, each entry of a Bundle. A
// type the call might touch but the scopes do not cover refuses the whole
// call (it is never silently filtered): the message names the type, so
// the client can narrow its request (e.g. _include=Observation:subject:Patient).
func Decide(s smart.Scopes, c Call) error {
	segs := strings.Split(strings.Trim(c.Path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	d := decider{s: s}
	if c.Opaque {
		for _, in := range []smart.Interaction{smart.InteractionCreate, smart.InteractionRead, smart.InteractionUpdate, smart.InteractionDelete, smart.InteractionSearchType} {
			d.all(in)
		}
		if err := d.err(); err != nil {
			return forbidden("the request body could not be read to see which types it reaches, so it needs every permission on every type: %s", fhir.AsError(err).Issues[0].Diagnostics)
		}
	}
	switch {
	case len(segs) == 0 && c.Method == http.MethodPost:
		for i, e := range c.Entries {
			if t, _, _ := strings.Cut(strings.Trim(e.Path, "/"), "/"); t == AuditType {
				return forbidden("Bundle entry %d (%s %s): the audit trail is read by a search of AuditEvent, not in a Bundle", i, e.Method, e.Path)
			}
			if err := Decide(s, e); err != nil {
				fe := fhir.AsError(err)
				return forbidden("Bundle entry %d (%s %s): %s", i, e.Method, e.Path, fe.Issues[0].Diagnostics)
			}
		}
		return nil
	case len(segs) == 0:
		return nil // GET / and the like: no data, the router answers
	case segs[0] == "_history" && len(segs) == 1:
		d.all(smart.InteractionHistorySystem)
		return d.err()
	case segs[0] == "metadata":
		return nil
	}
	typ := segs[0]
	if !fhir.IsResourceType(typ) {
		return nil // not a FHIR interaction on data: the router answers 404
	}
	write := c.Method == http.MethodPost && !(len(segs) == 2 && segs[1] == "_search") ||
		c.Method == http.MethodPut || c.Method == http.MethodDelete || c.Method == http.MethodPatch
	if write && typ == AuditType {
		return forbidden("AuditEvents are written by the gateway alone: they cannot be created, changed or deleted through the API")
	}
	switch c.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case len(segs) == 1:
			d.need(typ, smart.InteractionSearchType)
			d.query(typ, c.Query)
		case len(segs) == 2 && segs[1] == "_history":
			d.need(typ, smart.InteractionHistoryType)
		case len(segs) == 2:
			d.need(typ, smart.InteractionRead)
		case len(segs) == 3 && segs[2] == "_history":
			d.need(typ, smart.InteractionHistoryInstance)
		case len(segs) == 3 && segs[2] == "$everything":
			d.need(typ, smart.InteractionRead)
			for _, t := range search.CompartmentTypes(typ) {
				if t != AuditType { // kept in AuditTenant: never in a compartment
					d.need(t, smart.InteractionSearchType)
				}
			}
			d.query(typ, c.Query)
		case len(segs) == 3:
			// A compartment search: GET /Patient/1/Observation.
			d.need(segs[2], smart.InteractionSearchType)
			d.query(segs[2], c.Query)
		default:
			d.need(typ, smart.InteractionVRead)
		}
	case http.MethodPost:
		switch {
		case len(segs) == 2 && segs[1] == "_search":
			d.need(typ, smart.InteractionSearchType)
			d.query(typ, c.Query)
		case len(segs) == 2 && strings.HasPrefix(segs[1], "$"):
			// $validate checks a body and stores nothing: any write
			// permission on the type allows it.
			if !s.Permits(typ, smart.InteractionCreate) && !s.Permits(typ, smart.InteractionUpdate) {
				d.missing = append(d.missing, "create or update on "+typ)
			}
		default:
			d.need(typ, smart.InteractionCreate)
			if c.IfNoneExist != "" {
				q, _ := url.ParseQuery(c.IfNoneExist)
				d.need(typ, smart.InteractionSearchType)
				d.query(typ, q)
			}
		}
	case http.MethodPut:
		d.need(typ, smart.InteractionUpdate)
		if len(segs) == 1 { // conditional update: searches, may create
			d.need(typ, smart.InteractionSearchType)
			d.need(typ, smart.InteractionCreate)
			d.query(typ, c.Query)
		}
	case http.MethodPatch:
		d.need(typ, smart.InteractionPatch)
	case http.MethodDelete:
		d.need(typ, smart.InteractionDelete)
		if len(segs) == 1 {
			d.need(typ, smart.InteractionSearchType)
			d.query(typ, c.Query)
		}
	}
	return d.err()
}

type decider struct {
	s       smart.Scopes
	missing []string
}

// permits is Scopes.Permits with the audit rule: AuditEvent needs a scope
// naming it.
func permits(s smart.Scopes, typ string, in smart.Interaction) bool {
	if typ != AuditType {
		return s.Permits(typ, in)
	}
	p := in.Perm()
	for _, sc := range s.Resources {
		if sc.Context == "system" && sc.Query == "" && sc.ResourceType == AuditType && sc.Perms&p != 0 {
			return true
		}
	}
	return false
}

func (d *decider) need(typ string, in smart.Interaction) {
	if !permits(d.s, typ, in) {
		d.missing = append(d.missing, fmt.Sprintf("%s (%s) on %s", in, in.Perm(), typ))
	}
}

// all needs in on every type (system/*). The audit trail is kept apart,
// in its own tenant (AuditTenant), so no wildcard reaches it.
func (d *decider) all(in smart.Interaction) {
	if !d.s.Permits("", in) {
		d.missing = append(d.missing, fmt.Sprintf("%s (%s) on every type (system/*.%s)", in, in.Perm(), in.Perm()))
	}
}

// query needs search on every type a search's parameters reach. A query
// that does not parse is left to the search to refuse (400), which it
// does before reading anything.
func (d *decider) query(typ string, params url.Values) {
	if len(params) == 0 || !fhir.IsResourceType(typ) {
		return
	}
	q, err := search.ParseQuery(typ, params, "", false)
	if err != nil {
		return
	}
	for _, inc := range q.Include {
		if inc.SourceType != "" {
			d.need(inc.SourceType, smart.InteractionSearchType)
		}
		switch {
		case inc.TargetType != "":
			d.need(inc.TargetType, smart.InteractionSearchType)
		case inc.Param == nil:
			d.all(smart.InteractionSearchType)
		default:
			for _, t := range targets(inc.Param) {
				if t == "" {
					d.all(smart.InteractionSearchType)
				} else {
					d.need(t, smart.InteractionSearchType)
				}
			}
		}
	}
	for _, inc := range q.RevInclude {
		if inc.SourceType == "" {
			d.all(smart.InteractionSearchType)
			continue
		}
		d.need(inc.SourceType, smart.InteractionSearchType)
	}
	for _, c := range q.Clauses {
		d.clause(c)
	}
}

func (d *decider) clause(c search.Clause) {
	if c.Chain != nil {
		d.need(c.Chain.Type, smart.InteractionSearchType)
		d.clause(c.Chain.Clause)
	}
	if c.Has != nil {
		d.need(c.Has.Type, smart.InteractionSearchType)
		d.clause(c.Has.Clause)
	}
}

// targets are the types a reference parameter may point at; "Resource"
// (any) counts as every type.
func targets(p *search.Param) []string {
	var out []string
	for _, t := range p.Targets {
		if t == "Resource" || t == "Any" {
			return []string{""}
		}
		out = append(out, t)
	}
	return out
}

func (d *decider) err() error {
	if len(d.missing) == 0 {
		return nil
	}
	return forbidden("the access token's scopes (%s) do not permit %s", clip(d.s.String()), strings.Join(dedupe(d.missing), "; "))
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	out := l[:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func forbidden(format string, args ...any) error {
	return fhir.Errorf(fhir.IssueForbidden, "", format, args...).WithStatus(http.StatusForbidden)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
