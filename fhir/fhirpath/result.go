package fhirpath

import (
	"github.com/kapbridge/kapbridge/fhir"
)

// Collection is what an expression evaluates to: an ordered list of items.
type Collection []Item

// Item is one member of a Collection: an element of the resource, or a
// value the expression computed.
type Item struct{ it item }

// Type names the item's type with its namespace: "FHIR.HumanName",
// "FHIR.code", "System.Integer".
func (i Item) Type() string { return i.it.typeName().String() }

// FHIRType is the FHIR type name of an element ("Quantity", "string",
// "BackboneElement", a resource type), "" for a System value.
func (i Item) FHIRType() string { return i.it.tname }

// Node returns the element of the resource the item is, or nil for a
// computed value (and for a primitive that has only extensions).
func (i Item) Node() *fhir.Value { return i.it.v }

// Bool returns the item's value when it is a Boolean.
func (i Item) Bool() (b, ok bool) {
	b, ok = value(i.it).(bool)
	return b, ok
}

// String returns the item as toString() gives it (a date as 2014-12-14, a
// quantity as 4 'mg'); a complex element gives its JSON.
func (i Item) String() string {
	if s, ok := toText(value(i.it)); ok {
		return s
	}
	if ti, ok := i.it.sv.(typeInfo); ok {
		return ti.ns + "." + ti.name
	}
	if i.it.v != nil {
		return string(i.it.v.Encode())
	}
	return ""
}
