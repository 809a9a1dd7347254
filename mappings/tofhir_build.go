package mappings

import (
	"strconv"

	"github.com/kapbridge/kapbridge/fhir"
)

// Builders for *fhir.Value trees. A nil *fhir.Value means "absent": obj
// and arr drop nil members and elements, so optional record fields need
// no if-statements and an object never carries an empty value (which FHIR
// forbids).
//
// The nodes come from an arena: a mapping makes a few hundred small
// nodes per record, and allocating them one by one made the mapping
// mostly malloc and GC. Slices carved from the arena are capped at their
// length, so a caller's later Set or append copies instead of writing
// into a neighbour. No node is shared between resources: a caller may
// change one resource without touching another.
type arena struct {
	vals []fhir.Value
	mems []fhir.Member
	ptrs []*fhir.Value
}

// Chunks start small (a consent makes a few dozen nodes) and double up to
// arenaChunk (a course makes thousands).
const arenaChunk = 1024

func grow(c int) int {
	if c < 64 {
		return 64
	}
	return min(2*c, arenaChunk)
}

func (a *arena) val() *fhir.Value {
	if len(a.vals) == cap(a.vals) {
		a.vals = make([]fhir.Value, 0, grow(cap(a.vals)))
	}
	a.vals = a.vals[:len(a.vals)+1]
	return &a.vals[len(a.vals)-1]
}

func (a *arena) members(n int) []fhir.Member {
	if n > arenaChunk/4 {
		return make([]fhir.Member, 0, n)
	}
	if cap(a.mems)-len(a.mems) < n {
		a.mems = make([]fhir.Member, 0, max(grow(cap(a.mems)), n))
	}
	l := len(a.mems)
	a.mems = a.mems[:l+n]
	return a.mems[l : l : l+n]
}

func (a *arena) pointers(n int) []*fhir.Value {
	if n > arenaChunk/4 {
		return make([]*fhir.Value, 0, n)
	}
	if cap(a.ptrs)-len(a.ptrs) < n {
		a.ptrs = make([]*fhir.Value, 0, max(grow(cap(a.ptrs)), n))
	}
	l := len(a.ptrs)
	a.ptrs = a.ptrs[:l+n]
	return a.ptrs[l : l : l+n]
}

func mem(key string, v *fhir.Value) fhir.Member { return fhir.Member{Key: key, Value: v} }

// obj returns an object of the non-nil members, or nil if there are none.
func (a *arena) obj(ms ...fhir.Member) *fhir.Value {
	n := 0
	for _, m := range ms {
		if m.Value != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	v := a.val()
	v.Kind = fhir.KindObject
	v.Members = a.members(n)
	for _, m := range ms {
		if m.Value != nil {
			v.Members = append(v.Members, m)
		}
	}
	return v
}

// arr returns an array of the non-nil elements, or nil if there are none.
func (a *arena) arr(vs ...*fhir.Value) *fhir.Value {
	n := 0
	for _, e := range vs {
		if e != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	v := a.val()
	v.Kind = fhir.KindArray
	v.Array = a.pointers(n)
	for _, e := range vs {
		if e != nil {
			v.Array = append(v.Array, e)
		}
	}
	return v
}

// str returns a string, or nil for "".
func (a *arena) str(s string) *fhir.Value {
	if s == "" {
		return nil
	}
	v := a.val()
	v.Kind, v.Str = fhir.KindString, s
	return v
}

func (a *arena) boolean(b bool) *fhir.Value {
	v := a.val()
	v.Kind, v.Bool = fhir.KindBool, b
	return v
}

func (a *arena) integer(n int) *fhir.Value {
	v := a.val()
	v.Kind, v.Str = fhir.KindNumber, strconv.Itoa(n)
	return v
}

// decimal writes the shortest text that reads back as x, so a practice's
// 0.5 stays 0.5 and any float64 round-trips exactly.
func (a *arena) decimal(x float64) *fhir.Value {
	v := a.val()
	v.Kind, v.Str = fhir.KindNumber, strconv.FormatFloat(x, 'f', -1, 64)
	return v
}

func (a *arena) strs(ss []string) *fhir.Value {
	vs := make([]*fhir.Value, len(ss))
	for i, s := range ss {
		vs[i] = a.str(s)
	}
	return a.arr(vs...)
}

// coding returns the Coding of a concept in the code table.
func (a *arena) coding(concept string) *fhir.Value {
	c := codeOf(concept)
	return a.obj(mem("system", a.str(c.System)), mem("code", a.str(c.Code)), mem("display", a.str(c.Display)))
}

// localCoding codes a concept of one of the project's CodeSystems.
func (a *arena) localCoding(system, code, display string) *fhir.Value {
	return a.obj(mem("system", a.str(system)), mem("code", a.str(code)), mem("display", a.str(display)))
}

// concept returns a CodeableConcept of codings and a text.
func (a *arena) concept(text string, codings ...*fhir.Value) *fhir.Value {
	return a.obj(mem("coding", a.arr(codings...)), mem("text", a.str(text)))
}

// textCoding is a concept's text and the key of its coding (codes.go).
type textCoding struct{ text, coding string }

// textConcept is the CodeableConcept of key in table, nil if it has none.
func (a *arena) textConcept(table map[string]textCoding, key string) *fhir.Value {
	c, ok := table[key]
	if !ok {
		return nil
	}
	return a.concept(c.text, a.coding(c.coding))
}

// ref returns a literal reference Type/id.
func (a *arena) ref(typ, id string) *fhir.Value {
	return a.obj(mem("reference", a.str(typ+"/"+id)))
}

// ucum returns a Quantity in a UCUM unit of the code table.
func (a *arena) ucum(x float64, unitConcept string) *fhir.Value {
	u := codeOf(unitConcept)
	return a.obj(mem("value", a.decimal(x)), mem("unit", a.str(u.Display)), mem("system", a.str(u.System)), mem("code", a.str(u.Code)))
}

func (a *arena) period(start, end string) *fhir.Value {
	return a.obj(mem("start", a.str(start)), mem("end", a.str(end)))
}

func (a *arena) extension(url string, value fhir.Member) *fhir.Value {
	return a.obj(mem("url", a.str(url)), value)
}

// clone deep-copies v into the arena: a value a mapping puts in several
// places (the subject, the time, the labels) is cloned for each, so no
// node is shared.
func (a *arena) clone(v *fhir.Value) *fhir.Value {
	if v == nil {
		return nil
	}
	c := a.val()
	*c = fhir.Value{Kind: v.Kind, Str: v.Str, Bool: v.Bool}
	if v.Members != nil {
		c.Members = a.members(len(v.Members))
		for _, m := range v.Members {
			c.Members = append(c.Members, mem(m.Key, a.clone(m.Value)))
		}
	}
	if v.Array != nil {
		c.Array = a.pointers(len(v.Array))
		for _, e := range v.Array {
			c.Array = append(c.Array, a.clone(e))
		}
	}
	return c
}

// clones deep-copies each value.
func (a *arena) clones(vs []*fhir.Value) []*fhir.Value {
	out := make([]*fhir.Value, len(vs))
	for i, v := range vs {
		out[i] = a.clone(v)
	}
	return out
}
