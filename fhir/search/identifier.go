package search

import (
	"sync"

	"github.com/kapbridge/kapbridge/fhir"
)

// The reference :identifier modifier (subject:identifier=system|value)
// matches a Reference by its identifier element, not by what it points
// at. Extract gives each Reference.identifier an entry of type reference
// with Text "identifier" (fhir.IndexEntry); IndexIdentifiers turns it,
// before it is stored, into a token entry of its own parameter, named
// "<code>:identifier", and the parser turns the modifier into a token
// clause on that parameter (IdentifierParam). Stores then need nothing
// of their own for it: it is a token search.

// IdentifierSuffix names the token parameter that holds a reference
// parameter's Reference.identifier values.
const IdentifierSuffix = ":identifier"

var identifierParams sync.Map // *Param -> *Param

// IdentifierParam is the token parameter that answers p:identifier: the
// identifiers of the references p's values come from (for an alias such
// as Observation patient, those of the parameters it aliases; the target
// type cannot be told from an identifier, so it is not checked).
func IdentifierParam(p *Param) *Param {
	if ip, ok := identifierParams.Load(p); ok {
		return ip.(*Param)
	}
	ip := &Param{Code: p.Code + IdentifierSuffix, URL: p.URL, Type: Token, Expression: p.Expression}
	if len(p.Alias) > 0 {
		for _, a := range p.Alias {
			ip.Alias = append(ip.Alias, a+IdentifierSuffix)
		}
	}
	got, _ := identifierParams.LoadOrStore(p, ip)
	return got.(*Param)
}

// IndexIdentifiers turns, in place, the Reference.identifier entries of
// entries into the token entries :identifier searches (see above).
func IndexIdentifiers(entries []fhir.IndexEntry) {
	for i := range entries {
		e := &entries[i]
		if e.Type == string(Reference) && e.Text == "identifier" {
			*e = fhir.IndexEntry{Param: e.Param + IdentifierSuffix, Type: string(Token), System: e.System, Code: e.Code}
		}
	}
}
