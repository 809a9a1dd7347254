package smart

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// Perms is a set of SMART v2 permissions: the letters c r u d s.
type Perms uint8

// The five permissions, in the order SMART v2 writes them.
const (
	PermCreate Perms = 1 << iota // c: create
	PermRead                     // r: read, vread, instance history
	PermUpdate                   // u: update, patch
	PermDelete                   // d: delete
	PermSearch                   // s: search, type and system history

	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

const permLetters = "cruds"

// String writes the letters in SMART v2 order ("rs", "cruds"); "" for none.
func (p Perms) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Interaction is a FHIR RESTful interaction code
// (http://hl7.org/fhir/restful-interaction).
type Interaction string

// The interactions a scope decides.
const (
	InteractionRead            Interaction = "read"
	InteractionVRead           Interaction = "vread"
	InteractionHistoryInstance Interaction = "history-instance"
	InteractionCreate          Interaction = "create"
	InteractionUpdate          Interaction = "update"
	InteractionPatch           Interaction = "patch"
	InteractionDelete          Interaction = "delete"
	InteractionSearchType      Interaction = "search-type"
	InteractionHistoryType     Interaction = "history-type"
	InteractionSearchSystem    Interaction = "search-system"
	InteractionHistorySystem   Interaction = "history-system"
)

// Perm is the permission SMART v2 requires for the interaction, or 0 for
// an interaction it does not map (operations are decided by the
// interactions they perform).
func (i Interaction) Perm() Perms {
	switch i {
	case InteractionCreate:
		return PermCreate
	case InteractionRead, InteractionVRead, InteractionHistoryInstance:
		return PermRead
	case InteractionUpdate, InteractionPatch:
		return PermUpdate
	case InteractionDelete:
		return PermDelete
	case InteractionSearchType, InteractionHistoryType, InteractionSearchSystem, InteractionHistorySystem:
		return PermSearch
	}
	return 0
}

// Scope is one resource scope, normalized: SMART v1 system/Observation.read
// and v2 system/Observation.rs are the same Scope.
type Scope struct {
	Context      string // "system", "patient" or "user"
	ResourceType string // an R4 resource type, or "*"
	Perms        Perms
	// Query is a SMART v2 granular scope's restriction
	// (system/Observation.rs?category=...|laboratory), as written, without
	// the "?"; empty for a scope on the whole type.
	Query string
}

// String is the SMART v2 form: context/Type.letters[?query].
func (s Scope) String() string {
	out := s.Context + "/" + s.ResourceType + "." + s.Perms.String()
	if s.Query != "" {
		out += "?" + s.Query
	}
	return out
}

// Scopes is a parsed scope string: resource scopes normalized, the others
// (openid, fhirUser, launch, offline_access, vendor scopes) kept as written.
type Scopes struct {
	Resources []Scope
	Other     []string
}

// MaxScopeLength bounds a scope string a server parses.
const MaxScopeLength = 8 << 10

// ParseScopes parses a space-separated OAuth scope string (RFC 6749
// section 3.3). A token beginning "system/", "patient/" or "user/" must be
// a valid SMART v1 or v2 resource scope on an R4 resource type or "*";
// other tokens are kept in Other. Duplicates are dropped.
func ParseScopes(s string) (Scopes, error) {
	var out Scopes
	if len(s) > MaxScopeLength {
		return out, fmt.Errorf("smart: scope of %d bytes is over the limit of %d", len(s), MaxScopeLength)
	}
	seen := map[string]bool{}
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue // RFC 6749 wants single spaces; doubled ones are harmless
		}
		for i := range len(tok) {
			if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return Scopes{}, fmt.Errorf("smart: scope %q: character %q is not allowed in a scope", clip(tok), c)
			}
		}
		context, _, _ := strings.Cut(tok, "/")
		if context != "system" && context != "patient" && context != "user" {
			if !seen[tok] {
				seen[tok] = true
				out.Other = append(out.Other, tok)
			}
			continue
		}
		sc, err := ParseScope(tok)
		if err != nil {
			return Scopes{}, err
		}
		if k := sc.String(); !seen[k] {
			seen[k] = true
			out.Resources = append(out.Resources, sc)
		}
	}
	return out, nil
}

// ParseScope parses one resource scope: context/Type.perms[?query], where
// perms is v1 read, write or * (read = rs, write = cud, * = cruds) or v2
// letters from "cruds", in that order, each at most once. A query is
// allowed with v2 letters only.
func ParseScope(tok string) (Scope, error) {
	bad := func(format string, args ...any) (Scope, error) {
		return Scope{}, fmt.Errorf("smart: scope %q: "+format, append([]any{clip(tok)}, args...)...)
	}
	context, rest, ok := strings.Cut(tok, "/")
	if !ok || (context != "system" && context != "patient" && context != "user") {
		return bad("want system/, patient/ or user/ followed by Type.permissions")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return bad("no permissions: write Type.rs (v2) or Type.read (v1)")
	}
	if typ != "*" && !isResourceType(typ) {
		return bad("%q is not an R4 resource type", clip(typ))
	}
	sc := Scope{Context: context, ResourceType: typ}
	v1 := true
	switch perms {
	case "read":
		sc.Perms = PermRead | PermSearch
	case "write":
		sc.Perms = PermCreate | PermUpdate | PermDelete
	case "*":
		sc.Perms = PermAll
	default:
		v1 = false
		last := -1
		for i := range len(perms) {
			at := strings.IndexByte(permLetters, perms[i])
			if at < 0 {
				return bad("permission %q is not one of c, r, u, d, s (or v1 read, write, *)", perms[i])
			}
			if at <= last {
				return bad("permissions must be written once each in the order c, r, u, d, s")
			}
			last = at
			sc.Perms |= 1 << at
		}
		if sc.Perms == 0 {
			return bad("no permissions after the dot")
		}
	}
	if hasQuery {
		if v1 {
			return bad("a v1 scope (.read, .write, .*) cannot carry a ?query; use v2 letters")
		}
		if query == "" {
			return bad("empty query after ?")
		}
		if _, err := url.ParseQuery(query); err != nil {
			return bad("malformed query: %v", err)
		}
		sc.Query = query
	}
	return sc, nil
}

func isResourceType(name string) bool {
	return name != "Resource" && name != "DomainResource" && fhir.TypeCategory(name) == "resource"
}

// String writes the scopes normalized (resource scopes in v2 form, then
// the others), separated by single spaces.
func (s Scopes) String() string {
	parts := make([]string, 0, len(s.Resources)+len(s.Other))
	for _, r := range s.Resources {
		parts = append(parts, r.String())
	}
	parts = append(parts, s.Other...)
	return strings.Join(parts, " ")
}

// Permits says whether the system scopes allow the interaction on
// resourceType; resourceType "" stands for every type (a system-level
// search or history), which only a system/*.s scope allows. Patient and
// user scopes are ignored: they need a patient or user context, which a
// backend service has none of. Granular scopes (with a query) allow
// nothing here, since this check cannot see the resource: restricting
// searches by them is the server's (issue 14).
func (s Scopes) Permits(resourceType string, in Interaction) bool {
	p := in.Perm()
	if p == 0 {
		return false
	}
	for _, sc := range s.Resources {
		if sc.Context != "system" || sc.Query != "" || sc.Perms&p == 0 {
			continue
		}
		if sc.ResourceType == "*" || (resourceType != "" && sc.ResourceType == resourceType) {
			return true
		}
	}
	return false
}

// Within is what of s the allowed scopes grant: each resource scope keeps
// the permissions some allowed scope of the same context and type (or *)
// has; a granular scope is granted when an allowed scope covers its type
// without a query, or has the very same query; other scopes pass when
// allowed lists them. Scopes left with no permission are dropped.
func (s Scopes) Within(allowed Scopes) Scopes {
	var out Scopes
	for _, r := range s.Resources {
		var grant Perms
		for _, a := range allowed.Resources {
			if a.Context != r.Context || (a.ResourceType != "*" && a.ResourceType != r.ResourceType) {
				continue
			}
			if a.Query != "" && (a.Query != r.Query || a.ResourceType != r.ResourceType) {
				continue
			}
			grant |= a.Perms
		}
		if g := r.Perms & grant; g != 0 {
			r.Perms = g
			out.Resources = append(out.Resources, r)
		}
	}
	for _, o := range s.Other {
		if slices.Contains(allowed.Other, o) {
			out.Other = append(out.Other, o)
		}
	}
	return out
}

// clip shortens what a refusal quotes from its input.
func clip(s string) string { return clipN(s, 80) }

func clipN(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
