package mappings

import (
	"strconv"
	"sync/atomic"
	"unsafe"

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
	// first is the size of each kind's first chunk (from sizing), used the
	// total taken, so the next mapping of the kind can size its first.
	first, used arenaSize
}

// arenaSize counts nodes, members and pointers.
type arenaSize struct{ vals, mems, ptrs int32 }

// Chunks after the first double from 64 up to arenaChunk (a course makes
// thousands of nodes).
const arenaChunk = 1024

func grow(c int) int {
	if c < 64 {
		return 64
	}
	return min(2*c, arenaChunk)
}

// chunk is the capacity of a new chunk: while the hint for the record's
// kind (sizing) lasts, chunks of it up to most elements each (so a chunk
// stays within the allocator's small-object size classes, 32 KiB: a larger
// one takes the slower large-object path, measured at 6 % of a course's
// time); after it, doubling from 64 as without a hint, so a record larger
// than the hint wastes little.
func chunk(first *int32, most, c, n int) int {
	if f := int(*first); f > 0 {
		k := min(f, most)
		if *first = int32(f - k); *first == 0 {
			*first = -1
		}
		return max(k, n)
	} else if f < 0 {
		*first = 0
		c = 0
	}
	return max(grow(c), n)
}

// The most elements of a hinted chunk: 32 KiB of each.
const (
	mostVals = 32 << 10 / int(unsafe.Sizeof(fhir.Value{}))
	mostMems = 32 << 10 / int(unsafe.Sizeof(fhir.Member{}))
	mostPtrs = 32 << 10 / int(unsafe.Sizeof((*fhir.Value)(nil)))
)

// sizing holds, per record kind, a running average of what its mappings
// used, so the first chunk fits most records of the kind (an observation
// record makes 300-450 nodes, a course about 900). Measured on the four
// example courses: chunks that started at 64 and doubled left about a
// third of the node bytes allocated and unused. A hint only: a record
// larger than it grows as before; concurrent mappings may race on it,
// which costs at most a worse guess.
var sizing [8]struct{ vals, mems, ptrs atomic.Int32 }

func sizingOf(k Kind) int {
	switch k {
	case KindClient:
		return 0
	case KindPractitioner:
		return 1
	case KindCourse:
		return 2
	case KindSession:
		return 3
	case KindScreening:
		return 4
	case KindObservation:
		return 5
	case KindNote:
		return 6
	}
	return 7
}

// sized starts an arena for a record of kind k.
func sized(k Kind) arena {
	s := &sizing[sizingOf(k)]
	return arena{first: arenaSize{s.vals.Load(), s.mems.Load(), s.ptrs.Load()}}
}

// remember stores what a used, for the next record of kind k.
func (a *arena) remember(k Kind) {
	s := &sizing[sizingOf(k)]
	average(&s.vals, a.used.vals)
	average(&s.mems, a.used.mems)
	average(&s.ptrs, a.used.ptrs)
}

// average moves the hint a quarter of the way to what was used. No
// margin on top: a record larger than the hint takes a small chunk more
// (from 64 nodes), while a margin was allocated, zeroed and collected
// unused by every record smaller (an eighth on top measured 4-8 % more
// bytes per course and per batch of observation records, and the
// garbage collector's cycles follow the bytes).
func average(h *atomic.Int32, used int32) {
	want := used
	old := h.Load()
	h.Store(old + (want-old)/4)
}

func (a *arena) val() *fhir.Value {
	if len(a.vals) == cap(a.vals) {
		a.vals = make([]fhir.Value, 0, chunk(&a.first.vals, mostVals, cap(a.vals), 1))
	}
	a.used.vals++
	a.vals = a.vals[:len(a.vals)+1]
	return &a.vals[len(a.vals)-1]
}

func (a *arena) members(n int) []fhir.Member {
	a.used.mems += int32(n)
	if n > arenaChunk/4 {
		return make([]fhir.Member, 0, n)
	}
	if cap(a.mems)-len(a.mems) < n {
		a.mems = make([]fhir.Member, 0, chunk(&a.first.mems, mostMems, cap(a.mems), n))
	}
	l := len(a.mems)
	a.mems = a.mems[:l+n]
	return a.mems[l : l : l+n]
}

func (a *arena) pointers(n int) []*fhir.Value {
	a.used.ptrs += int32(n)
	if n > arenaChunk/4 {
		return make([]*fhir.Value, 0, n)
	}
	if cap(a.ptrs)-len(a.ptrs) < n {
		a.ptrs = make([]*fhir.Value, 0, chunk(&a.first.ptrs, mostPtrs, cap(a.ptrs), n))
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
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	v := a.val()
	v.Kind = fhir.KindArray
	v.Array = a.pointers(n)
	for _, s := range ss {
		if s != "" {
			v.Array = append(v.Array, a.str(s))
		}
	}
	return v
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
