package mappings

import (
	"strconv"

	"github.com/kapbridge/kapbridge/fhir"
)

// Small builders for *fhir.Value trees. A nil *fhir.Value means "absent":
// obj and arr drop nil members and elements, so optional record fields
// need no if-statements and an object never carries an empty value (which
// FHIR forbids).

func mem(key string, v *fhir.Value) fhir.Member { return fhir.Member{Key: key, Value: v} }

// obj returns an object of the non-nil members, or nil if there are none.
func obj(ms ...fhir.Member) *fhir.Value {
	n := 0
	for _, m := range ms {
		if m.Value != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	v := &fhir.Value{Kind: fhir.KindObject, Members: make([]fhir.Member, 0, n)}
	for _, m := range ms {
		if m.Value != nil {
			v.Members = append(v.Members, m)
		}
	}
	return v
}

// arr returns an array of the non-nil elements, or nil if there are none.
func arr(vs ...*fhir.Value) *fhir.Value {
	n := 0
	for _, e := range vs {
		if e != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	v := &fhir.Value{Kind: fhir.KindArray, Array: make([]*fhir.Value, 0, n)}
	for _, e := range vs {
		if e != nil {
			v.Array = append(v.Array, e)
		}
	}
	return v
}

// str returns a string, or nil for "".
func str(s string) *fhir.Value {
	if s == "" {
		return nil
	}
	return fhir.String(s)
}

func boolean(b bool) *fhir.Value { return &fhir.Value{Kind: fhir.KindBool, Bool: b} }

func integer(n int) *fhir.Value { return fhir.Number(int64(n)) }

// decimal writes the shortest text that reads back as x, so a practice's
// 0.5 stays 0.5 (FHIR decimals keep their precision).
func decimal(x float64) *fhir.Value {
	return &fhir.Value{Kind: fhir.KindNumber, Str: strconv.FormatFloat(x, 'f', -1, 64)}
}

func strs(ss []string) *fhir.Value {
	vs := make([]*fhir.Value, len(ss))
	for i, s := range ss {
		vs[i] = str(s)
	}
	return arr(vs...)
}

// coding returns the Coding of a concept in the code table.
func coding(concept string) *fhir.Value {
	c := codeOf(concept)
	return obj(mem("system", str(c.System)), mem("code", str(c.Code)), mem("display", str(c.Display)))
}

// localCoding codes a concept of one of the project's CodeSystems.
func localCoding(system, code, display string) *fhir.Value {
	return obj(mem("system", str(system)), mem("code", str(code)), mem("display", str(display)))
}

// concept returns a CodeableConcept of codings and a text.
func concept(text string, codings ...*fhir.Value) *fhir.Value {
	return obj(mem("coding", arr(codings...)), mem("text", str(text)))
}

// ref returns a literal reference Type/id.
func ref(typ, id string) *fhir.Value {
	return obj(mem("reference", str(typ+"/"+id)))
}

// ucum returns a Quantity in a UCUM unit of the code table.
func ucum(x float64, unitConcept string) *fhir.Value {
	u := codeOf(unitConcept)
	return obj(mem("value", decimal(x)), mem("unit", str(u.Display)), mem("system", str(u.System)), mem("code", str(u.Code)))
}

func period(start, end string) *fhir.Value {
	return obj(mem("start", str(start)), mem("end", str(end)))
}

func extension(url string, value fhir.Member) *fhir.Value {
	return obj(mem("url", str(url)), value)
}
