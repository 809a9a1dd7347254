package fhirpath

import (
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The two namespaces of FHIRPath types: System (the literal types of the
// language) and FHIR (the R4 model).
const (
	nsSystem = "System"
	nsFHIR   = "FHIR"
)

// systemTypes are the System namespace's type names.
var systemTypes = map[string]bool{
	"Any": true, "Boolean": true, "String": true, "Integer": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true, "Quantity": true,
}

// fhirBase gives the R4 base type of the types whose base is not the
// obvious one (Element for data types, DomainResource for resources). The
// R4 definitions derive code, id and markdown from string; the uri family
// from uri; positiveInt and unsignedInt from integer; the Quantity
// profiles from Quantity; and a few data types from BackboneElement.
var fhirBase = map[string]string{
	"code": "string", "id": "string", "markdown": "string",
	"url": "uri", "canonical": "uri", "oid": "uri", "uuid": "uri",
	"positiveInt": "integer", "unsignedInt": "integer",
	"Age": "Quantity", "Count": "Quantity", "Distance": "Quantity", "Duration": "Quantity",
	"MoneyQuantity": "Quantity", "SimpleQuantity": "Quantity",
	"Dosage": "BackboneElement", "ElementDefinition": "BackboneElement", "Timing": "BackboneElement",
	"MarketingStatus": "BackboneElement", "Population": "BackboneElement",
	"ProdCharacteristic": "BackboneElement", "ProductShelfLife": "BackboneElement",
	"SubstanceAmount": "BackboneElement",
	"BackboneElement": "Element", "Element": "",
	"Bundle": "Resource", "Binary": "Resource", "Parameters": "Resource",
	"DomainResource": "Resource", "Resource": "",
}

// fhirBaseOf returns the R4 base of a FHIR type name, or "".
func fhirBaseOf(name string) string {
	if b, ok := fhirBase[name]; ok {
		return b
	}
	switch fhir.TypeCategory(name) {
	case "resource":
		return "DomainResource"
	case "primitive", "complex":
		return "Element"
	}
	return ""
}

// isFHIRType reports whether name is an R4 type (or one of the profiles
// of Quantity the definitions use by name).
func isFHIRType(name string) bool {
	if fhir.TypeCategory(name) != "" {
		return true
	}
	_, ok := fhirBase[name]
	return ok
}

// fhirDerives reports whether FHIR type t is want or derives from it.
func fhirDerives(t, want string) bool {
	for i := 0; t != "" && i < 8; i++ {
		if t == want {
			return true
		}
		t = fhirBaseOf(t)
	}
	return false
}

// resolveType checks a type specifier against the two models: a bare
// name is FHIR's if FHIR defines it, else System's.
func resolveType(ts typeSpec) (typeSpec, bool) {
	switch ts.ns {
	case nsSystem:
		return ts, systemTypes[ts.name]
	case nsFHIR:
		return ts, isFHIRType(ts.name)
	case "":
		if isFHIRType(ts.name) {
			return typeSpec{ns: nsFHIR, name: ts.name}, true
		}
		if systemTypes[ts.name] {
			return typeSpec{ns: nsSystem, name: ts.name}, true
		}
	}
	return ts, false
}

// itemIs implements "is": exact type or a subtype, in its namespace.
func itemIs(it item, ts typeSpec) bool {
	if ts.ns == nsSystem {
		return it.tname == "" && it.systemType() == ts.name || ts.name == "Any"
	}
	if it.tname == "" {
		return false
	}
	return fhirDerives(it.tname, ts.name)
}

// itemIsExactly implements as() and ofType(): the test suite has
// Patient.gender.as(string) empty while gender.is(string) is true, so
// these match the type itself (and, for the profiles of Quantity and the
// like, which R4 data carries as their base type, the base).
func itemIsExactly(it item, ts typeSpec) bool {
	if ts.ns == nsSystem {
		return it.tname == "" && it.systemType() == ts.name || ts.name == "Any"
	}
	if it.tname == "" {
		return false
	}
	if it.tname == ts.name {
		return true
	}
	// Resources and complex types: a Patient is a DomainResource and a
	// Resource, and an Age is a Quantity, whichever way it is asked.
	if fhir.TypeCategory(it.tname) != "primitive" {
		return fhirDerives(it.tname, ts.name)
	}
	return false
}

// typeName is how type() names an item's type.
func (it item) typeName() typeSpec {
	if it.tname != "" {
		name := it.tname
		if strings.Contains(name, ".") {
			name = "BackboneElement"
		}
		return typeSpec{ns: nsFHIR, name: name}
	}
	return typeSpec{ns: nsSystem, name: it.systemType()}
}
