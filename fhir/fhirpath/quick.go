package fhirpath

import (
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// Most invariants are settled by which members an element has: ext-1
// ("extension.exists() != value.exists()"), qty-3 ("code.empty() or
// system.exists()"), obs-6, and the first operand of many an "or"
// (obs-7's "value.empty() or ...", ref-1's
// "reference.startsWith('#').not() or ..."). The checker runs them on
// every element of their type, and the engine's evaluation (an item per
// member read, a collection per step) was most of the checker's time.
//
// quickHolds compiles an invariant into a test of the element's members
// that answers true only where the engine's answer is true too: the
// operands of a top-level "or" chain are tried in the engine's order, and
// where the first operands are of the forms below the answer follows as
// the engine's short-circuit would give it; anything else (an operand of
// another form, an element the forms do not cover, an answer of false)
// is left to the engine, which also words the issue. TestQuickHolds
// compares the checker with and without these answers on the official
// examples and on variations of them.
//
// The forms, for a member name m (lowercase: not a type name) read from
// $this:
//
//	m.empty(), m.exists()         whether the engine would find m
//	m.startsWith('s')             m a single string value
//	x.not(), x and y, x or y, x implies y, x xor y, x = y, x != y
//	                              of the forms above (all Booleans, none empty)
//	m.(member | where(...))*.empty()   true where m is absent
func quickHolds(root *node) func(item) bool {
	var ops []quickFn
	for _, op := range orOperands(root, nil) {
		f := quickBool(op)
		if f == nil {
			if len(ops) == 0 {
				return nil
			}
			break // the operands before it can still settle it
		}
		ops = append(ops, f)
	}
	if len(ops) == 0 {
		return nil
	}
	return func(it item) bool {
		for _, f := range ops {
			b, ok := f(it)
			if !ok {
				return false
			}
			if b {
				return true // the engine's "or" stops here too
			}
		}
		return false
	}
}

// quickFn answers a Boolean operand on an element; ok false: not settled.
type quickFn func(it item) (b, ok bool)

// orOperands lists the operands of a chain of "or" in evaluation order.
func orOperands(n *node, out []*node) []*node {
	if n.kind == nBinary && n.op == "or" {
		return append(orOperands(n.left, out), n.right)
	}
	return append(out, n)
}

func quickBool(n *node) quickFn {
	switch n.kind {
	case nBinary:
		l, r := quickBool(n.left), quickBool(n.right)
		if l == nil || r == nil {
			return nil
		}
		var op func(a, b bool) bool
		switch n.op {
		case "and":
			op = func(a, b bool) bool { return a && b }
		case "or":
			op = func(a, b bool) bool { return a || b }
		case "implies":
			op = func(a, b bool) bool { return !a || b }
		case "xor", "!=":
			op = func(a, b bool) bool { return a != b }
		case "=":
			op = func(a, b bool) bool { return a == b }
		default:
			return nil
		}
		return func(it item) (bool, bool) {
			a, ok := l(it)
			if !ok {
				return false, false
			}
			b, ok := r(it)
			if !ok {
				return false, false
			}
			return op(a, b), true
		}
	case nPath:
		fn := n.right
		if fn.kind != nFunc {
			return nil
		}
		switch {
		case fn.name == "not" && len(fn.args) == 0:
			x := quickBool(n.left)
			if x == nil {
				return nil
			}
			return func(it item) (bool, bool) {
				b, ok := x(it)
				return !b, ok
			}
		case (fn.name == "empty" || fn.name == "exists") && len(fn.args) == 0:
			if m := startMember(n.left); m != "" {
				exists := fn.name == "exists"
				return func(it item) (bool, bool) {
					has, ok := quickHas(it, m)
					return has == exists, ok
				}
			}
			if m := emptyPath(n.left); m != "" && fn.name == "empty" {
				return func(it item) (bool, bool) {
					has, ok := quickHas(it, m)
					return true, ok && !has
				}
			}
		case fn.name == "startsWith" && len(fn.args) == 1 && fn.args[0].kind == nLiteral:
			prefix, isStr := fn.args[0].lit.sv.(string)
			m := startMember(n.left)
			if !isStr || m == "" {
				return nil
			}
			return func(it item) (bool, bool) {
				s, ok := quickString(it, m)
				return ok && strings.HasPrefix(s, prefix), ok
			}
		}
	}
	return nil
}

// startMember is m for a path that is the member m of $this alone.
func startMember(n *node) string {
	if n.kind == nMember && n.start && n.name != "" && n.name[0] >= 'a' && n.name[0] <= 'z' {
		return n.name
	}
	return ""
}

// emptyPath is m for a path m.a.where(...).b ...: members and where()
// after the member m of $this, empty wherever m is (where() evaluates its
// criteria on each input item only).
func emptyPath(n *node) string {
	for n.kind == nPath {
		r := n.right
		if !(r.kind == nMember || r.kind == nFunc && r.name == "where") {
			return ""
		}
		n = n.left
	}
	return startMember(n)
}

// quickHas says whether the engine would find member m of it, as
// children() does; ok false where that is not plain (a primitive, whose
// children are its extension's; a choice named by its type, which the
// engine refuses).
func quickHas(it item, m string) (has, ok bool) {
	if it.sv != nil || it.v == nil || it.v.Kind != fhir.KindObject {
		return false, false
	}
	o := it.v
	if it.node == nil {
		if m == "resourceType" {
			return false, true
		}
		return hasItems(o, m), true
	}
	if el := it.node.Element(m); el != nil {
		if el.Choice != "" {
			return false, false
		}
		return hasItems(o, m), true
	}
	if it.node.ChoiceElements(m) != nil {
		for _, mem := range o.Members {
			if el := it.node.Element(mem.Key); el != nil && el.Choice == m {
				return hasItems(o, mem.Key), true
			}
		}
	}
	return false, true
}

// hasItems says whether appendMember would append an item for member
// name of o (or its "_name" partner).
func hasItems(o *fhir.Value, name string) bool {
	v, ext := memberAndPartner(o, name)
	present := func(e, x *fhir.Value) bool {
		return e != nil && e.Kind != fhir.KindNull || x != nil && x.Kind == fhir.KindObject
	}
	if v != nil && v.Kind == fhir.KindArray || ext != nil && ext.Kind == fhir.KindArray {
		var va, xa []*fhir.Value
		if v != nil && v.Kind == fhir.KindArray {
			va = v.Array
		}
		if ext != nil && ext.Kind == fhir.KindArray {
			xa = ext.Array
		}
		for i := range max(len(va), len(xa)) {
			var e, x *fhir.Value
			if i < len(va) {
				e = va[i]
			}
			if i < len(xa) {
				x = xa[i]
			}
			if present(e, x) {
				return true
			}
		}
		return false
	}
	return present(v, ext)
}

// quickString is the value of member m of it where the engine would find
// one String there: a single JSON string of a type whose System value is
// its text (not a date, dateTime, instant or time).
func quickString(it item, m string) (string, bool) {
	if it.sv != nil || it.v == nil || it.v.Kind != fhir.KindObject || it.node == nil {
		return "", false
	}
	el := it.node.Element(m)
	if el == nil || el.Choice != "" || el.Node != nil {
		return "", false
	}
	switch el.Type {
	case "string", "uri", "url", "canonical", "code", "id", "oid", "uuid", "markdown":
	default:
		return "", false
	}
	v := it.v.Get(m)
	if v == nil || v.Kind != fhir.KindString {
		return "", false
	}
	return v.Str, true
}
