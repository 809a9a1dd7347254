package auth

import (
	"net/http"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// The conformance resources the gateway ships (its profiles, CodeSystems,
// ValueSets, Questionnaires, SearchParameters) are stored once, in the
// default practice (fhir.DefaultTenant), and are what every practice's
// records are checked against: every practice reads them there. They
// describe the API and the forms, not a patient, so sharing them shows a
// practice nothing of another's clinical data; what is shared is read only
// (a client of another practice cannot write them) and reached only by
// reads that stay among the shared types (SharedScopes).

// sharedTypes are the resource types read from the default practice by
// every practice: FHIR's conformance and terminology modules, and the
// Questionnaires the practice records are answers to.
var sharedTypes = map[string]bool{
	"CapabilityStatement": true, "StructureDefinition": true, "ImplementationGuide": true,
	"SearchParameter": true, "OperationDefinition": true, "CompartmentDefinition": true,
	"StructureMap": true, "GraphDefinition": true, "MessageDefinition": true,
	"CodeSystem": true, "ValueSet": true, "ConceptMap": true, "NamingSystem": true,
	"TerminologyCapabilities": true, "Questionnaire": true,
}

// Shared says whether typ is a shared conformance type.
func Shared(typ string) bool { return sharedTypes[typ] }

// SharedScopes are the scopes a read of the shared types by another
// practice must also satisfy (beside the client's own): read and search of
// the shared types, nothing else, so such a read cannot write, nor
// _include, _revinclude, _has or chain into the default practice's
// clinical data.
var SharedScopes = func() smart.Scopes {
	var b strings.Builder
	for t := range sharedTypes {
		b.WriteString("system/" + t + ".rs ")
	}
	s, err := smart.ParseScopes(strings.TrimSpace(b.String()))
	if err != nil {
		panic("auth: shared scopes: " + err.Error())
	}
	return s
}()

// SharedRead says whether a request for typ is a read the default
// practice answers for every practice: GET or HEAD of a shared type, or
// its POST _search.
func SharedRead(method, typ string, search bool) bool {
	if !sharedTypes[typ] {
		return false
	}
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodPost && search
}

// TenantFor is the tenant a request of tenant's client for typ reads:
// the default practice for a shared read, its own otherwise.
func TenantFor(tenant, method, typ string, search bool) string {
	if SharedRead(method, typ, search) {
		return fhir.DefaultTenant
	}
	return tenant
}

// DecideShared is Decide for a client of a practice other than the
// default one: its call must also, where it touches a shared type, keep
// to reading the shared types (SharedScopes). Nil for a call that touches
// no shared type.
func DecideShared(c Call) error {
	segs := strings.Split(strings.Trim(c.Path, "/"), "/")
	if len(segs) == 0 || segs[0] == "" {
		for i, e := range c.Entries {
			if err := DecideShared(e); err != nil {
				return forbidden("Bundle entry %d (%s %s): %s", i, e.Method, e.Path, fhir.AsError(err).Issues[0].Diagnostics)
			}
		}
		return nil
	}
	if !sharedTypes[segs[0]] {
		return nil
	}
	if err := Decide(SharedScopes, c); err != nil {
		return forbidden("%s resources are the gateway's, shared read-only with every practice: a request of another practice may read and search them, without reaching other types (%s)",
			segs[0], fhir.AsError(err).Issues[0].Diagnostics)
	}
	return nil
}
