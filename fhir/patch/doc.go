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
