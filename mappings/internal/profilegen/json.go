package main

import (
	"fmt"

	"github.com/kapbridge/kapbridge/fhir"
)

// obj builds an ordered JSON object from alternating keys and values, so
// the artifacts keep the member order FHIR readers expect (resourceType,
// id, url, ... ) and regenerate byte for byte. A nil value, an empty
// string or an empty list leaves the member out.
func obj(kv ...any) *fhir.Value {
	o := fhir.Object()
	for i := 0; i+1 < len(kv); i += 2 {
		if v := val(kv[i+1]); v != nil {
			o.Members = append(o.Members, fhir.Member{Key: kv[i].(string), Value: v})
		}
	}
	return o
}

func val(x any) *fhir.Value {
	switch x := x.(type) {
	case nil:
		return nil
	case *fhir.Value:
		return x
	case string:
		if x == "" {
			return nil
		}
		return fhir.String(x)
	case int:
		return fhir.Number(int64(x))
	case bool:
		return &fhir.Value{Kind: fhir.KindBool, Bool: x}
	case []*fhir.Value:
		if len(x) == 0 {
			return nil
		}
		return &fhir.Value{Kind: fhir.KindArray, Array: x}
	case []string:
		if len(x) == 0 {
			return nil
		}
		a := &fhir.Value{Kind: fhir.KindArray}
		for _, s := range x {
			a.Array = append(a.Array, fhir.String(s))
		}
		return a
	}
	panic(fmt.Sprintf("profilegen: no JSON for %T", x))
}

func arr(vs ...*fhir.Value) *fhir.Value { return &fhir.Value{Kind: fhir.KindArray, Array: vs} }

func coding(system, code, display string) *fhir.Value {
	return obj("system", system, "code", code, "display", display)
}

// clone deep-copies a tree, so a base element copied into a snapshot can
// be changed without touching the base.
func clone(v *fhir.Value) *fhir.Value {
	if v == nil {
		return nil
	}
	c := &fhir.Value{Kind: v.Kind, Str: v.Str, Bool: v.Bool}
	for _, a := range v.Array {
		c.Array = append(c.Array, clone(a))
	}
	for _, m := range v.Members {
		c.Members = append(c.Members, fhir.Member{Key: m.Key, Value: clone(m.Value)})
	}
	return c
}
