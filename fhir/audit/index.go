package audit

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Index is the search index of r's AuditEvent as Stored(id, ts): the entries search.Extract
// (with search.IndexIdentifiers) finds in it, built from r directly
// instead of by evaluating every AuditEvent search parameter's FHIRPath
// over the parsed resource, which was a third of the cost of writing an
// event. ok is false for a record with a value this builder does not
// handle the way Extract does (an id that is not a FHIR id, a type that
// is not a resource type, an empty request id, a string that is not
// UTF-8): the trail indexes those
// the general way. TestIndexMatchesExtract holds the two together.
func (r Record) Index(id string, ts time.Time) (entries []fhir.IndexEntry, ok bool) {
	if id == "" || !fhirID(id) || r.RequestID == "" || strings.ContainsAny(r.RequestID, " \t\r\n") {
		return nil, false
	}
	for _, s := range []string{r.RequestID, r.ClientID, r.Address} {
		if !utf8.ValidString(s) {
			return nil, false // JSON stores U+FFFD for the invalid bytes
		}
	}
	ref := r.Type != "" && r.ID != "" && !strings.HasPrefix(r.ID, "$") && !strings.HasPrefix(r.ID, "_")
	if ref && (!fhir.IsResourceType(r.Type) || !fhirID(r.ID)) {
		return nil, false
	}
	code, action := r.Interaction()
	token := func(param, system, code, display string) fhir.IndexEntry {
		e := fhir.IndexEntry{Param: param, Type: "token", System: system, Code: code}
		if display != "" {
			e.Text = search.NormalizeString(display)
		}
		return e
	}
	entityType := token("entity-type", sysEntityType, "2", "System Object")
	when := r.When.UTC().Truncate(time.Microsecond).UnixMicro()
	stamped := ts.UTC().Truncate(time.Microsecond).UnixMicro()
	out := make([]fhir.IndexEntry, 0, 16)
	out = append(out,
		token("_id", "", id, ""),
		fhir.IndexEntry{Param: "_lastUpdated", Type: "date", Lo: stamped, Hi: stamped},
		token("action", "", action, ""),
		fhir.IndexEntry{Param: "date", Type: "date", Lo: when, Hi: when},
		token("entity:identifier", SysRequest, r.RequestID, ""),
		entityType,
		token("outcome", "", Outcome(r.Status), ""),
		token("subtype", sysInteraction, code, ""),
		token("type", sysEventType, "rest", "RESTful Operation"),
	)
	if r.Address != "" {
		out = append(out, fhir.IndexEntry{Param: "address", Type: "string", Text: search.NormalizeString(r.Address), Exact: r.Address})
	}
	if r.ClientID != "" {
		out = append(out, token("agent:identifier", SysClient, r.ClientID, ""))
	}
	if r.Entry > 0 {
		out = append(out, token("entity:identifier", SysEntry, r.RequestID+"#"+itoa(r.Entry), ""), entityType)
	}
	if ref {
		out = append(out, fhir.IndexEntry{Param: "entity", Type: "reference", RefType: r.Type, RefID: r.ID}, entityType)
		if r.Type == "Patient" {
			out = append(out, fhir.IndexEntry{Param: "patient", Type: "reference", RefType: r.Type, RefID: r.ID})
		}
	}
	return out, true
}

// fhirID reports whether s is a FHIR id: 1 to 64 of A-Z a-z 0-9 - and ..
func fhirID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
