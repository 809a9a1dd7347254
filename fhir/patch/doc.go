// Package patch owns the two FHIR R4 patch formats the REST API's PATCH
// interaction takes: JSON Patch (RFC 6902, application/json-patch+json)
// and FHIRPath Patch (a Parameters resource, R4 fhirpatch.html). Both
// parse into a patch that applies to a resource's JSON tree (*fhir.Value)
// in place, keeping member order, so an untouched element stays byte for
// byte what it was.
//
// A patch that is malformed is an invalid error (400); one that is well
// formed but cannot be applied to this resource (a path that is not there,
// a failed test) is a processing error (422). Either names the operation
// by its index and its path. Applying checks nothing of FHIR itself: the
// caller validates the result as it validates any write.
package patch

import (
	"math/big"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// MaxOperations bounds the operations of one patch, so the work of one
// request stays proportional to its size.
const MaxOperations = 1000

// Patch is a parsed patch of either format.
type Patch interface {
	// Apply changes res, a resource's JSON tree, in place. On error res may
	// be partly changed: apply to a copy (Clone) to keep the original.
	Apply(res *fhir.Value) error
}

// Clone returns a deep copy of v.
func Clone(v *fhir.Value) *fhir.Value {
	if v == nil {
		return nil
	}
	c := &fhir.Value{Kind: v.Kind, Str: v.Str, Bool: v.Bool}
	if v.Array != nil {
		c.Array = make([]*fhir.Value, len(v.Array))
		for i, e := range v.Array {
			c.Array[i] = Clone(e)
		}
	}
	if v.Members != nil {
		c.Members = make([]fhir.Member, len(v.Members))
		for i, m := range v.Members {
			c.Members[i] = fhir.Member{Key: m.Key, Value: Clone(m.Value)}
		}
	}
	return c
}

// Equal reports whether a and b are the same JSON as RFC 6902's test
// has it: objects compare without regard to member order, numbers by
// their value (1.50 equals 1.5).
func Equal(a, b *fhir.Value) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case fhir.KindBool:
		return a.Bool == b.Bool
	case fhir.KindString:
		return a.Str == b.Str
	case fhir.KindNumber:
		if a.Str == b.Str {
			return true
		}
		if hugeExponent(a.Str) || hugeExponent(b.Str) {
			return false // 1e999999999 would take a gigabyte to compare
		}
		x, okx := new(big.Rat).SetString(a.Str)
		y, oky := new(big.Rat).SetString(b.Str)
		return okx && oky && x.Cmp(y) == 0
	case fhir.KindArray:
		if len(a.Array) != len(b.Array) {
			return false
		}
		for i := range a.Array {
			if !Equal(a.Array[i], b.Array[i]) {
				return false
			}
		}
		return true
	case fhir.KindObject:
		if len(a.Members) != len(b.Members) {
			return false
		}
		for _, m := range a.Members {
			if !Equal(m.Value, b.Get(m.Key)) {
				return false
			}
		}
		return true
	}
	return true
}

// hugeExponent reports whether a number literal's exponent is beyond any
// value a resource carries.
func hugeExponent(lit string) bool {
	i := strings.IndexAny(lit, "eE")
	if i < 0 {
		return false
	}
	e, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
	return err != nil || e > 400 || e < -400
}

// References returns the string nodes of p's values that hold a
// Reference.reference: a "reference" member anywhere inside a value, a
// FHIRPath Patch part named "reference", an operation whose name is
// "reference" or whose path ends at one, or (JSON Patch) a string value
// whose path ends at "reference". A transaction rewrites those that name
// another entry's fullUrl (urn:uuid:...) or are conditional, before p is
// applied, as it does in the entries' resources (http.html#trules). The
// nodes are p's own: setting their Str changes what p writes.
func References(p Patch) []*fhir.Value {
	var out []*fhir.Value
	var walk func(v *fhir.Value)
	walk = func(v *fhir.Value) {
		if v == nil {
			return
		}
		switch v.Kind {
		case fhir.KindObject:
			for _, m := range v.Members {
				if m.Key == "reference" && m.Value != nil && m.Value.Kind == fhir.KindString {
					out = append(out, m.Value)
					continue
				}
				walk(m.Value)
			}
		case fhir.KindArray:
			for _, x := range v.Array {
				walk(x)
			}
		}
	}
	switch p := p.(type) {
	case JSONPatch:
		for _, op := range p {
			if !op.hasValue || op.value == nil {
				continue
			}
			if op.value.Kind == fhir.KindString && len(op.path) > 0 && op.path[len(op.path)-1] == "reference" {
				out = append(out, op.value)
				continue
			}
			walk(op.value)
		}
	case FHIRPathPatch:
		for _, op := range p {
			if op.value != nil && op.value.Kind == fhir.KindString && (op.name == "reference" || op.name == "" && strings.HasSuffix(op.path, ".reference")) {
				out = append(out, op.value)
				continue
			}
			walk(op.value)
			parts(op.valueParts, &out, walk)
		}
	}
	return out
}

// parts collects the valueString of FHIRPath Patch parts named
// "reference" (a Reference built from parts), walking the others' values.
func parts(list *fhir.Value, out *[]*fhir.Value, walk func(*fhir.Value)) {
	if list == nil {
		return
	}
	items := list.Array
	if list.Kind != fhir.KindArray {
		items = []*fhir.Value{list}
	}
	for _, part := range items {
		if part == nil || part.Kind != fhir.KindObject {
			continue
		}
		if part.GetString("name") == "reference" {
			if s := part.Get("valueString"); s != nil && s.Kind == fhir.KindString {
				*out = append(*out, s)
				continue
			}
		}
		for _, m := range part.Members {
			switch {
			case m.Key == "part":
				parts(m.Value, out, walk)
			case strings.HasPrefix(m.Key, "value"):
				walk(m.Value)
			}
		}
	}
}
