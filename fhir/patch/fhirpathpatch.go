package patch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirpath"
)

// FHIRPathPatch is a parsed FHIRPath Patch: a Parameters resource whose
// parameters are each an "operation" with parts type, path, and as the
// type needs name, value, index, source and destination.
type FHIRPathPatch []pathOp

type pathOp struct {
	index      int // the operation's index in Parameters.parameter
	typ        string
	path       string
	expr       *fhirpath.Expression
	name       string
	value      *fhir.Value // the value part: its value[x] ...
	valueType  string      // ... and that type's suffix ("String", "HumanName"); "" for parts
	valueParts *fhir.Value // or its parts
	idx        []int       // index; source, destination
}

// ParseFHIRPathPatch reads a FHIRPath Patch from params, a Parameters
// resource that already passed validation.
func ParseFHIRPathPatch(params *fhir.Value) (FHIRPathPatch, error) {
	if params.GetString("resourceType") != "Parameters" {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "a FHIRPath Patch is a Parameters resource, not %q", params.GetString("resourceType"))
	}
	list := params.Get("parameter")
	if list == nil || len(list.Array) == 0 {
		return nil, fhir.Errorf(fhir.IssueInvalid, "Parameters.parameter", "the FHIRPath Patch has no operations")
	}
	if len(list.Array) > MaxOperations {
		return nil, fhir.Errorf(fhir.IssueTooCostly, "Parameters.parameter", "the FHIRPath Patch has %d operations; at most %d are taken", len(list.Array), MaxOperations)
	}
	var p FHIRPathPatch
	for i, param := range list.Array {
		where := fmt.Sprintf("Parameters.parameter[%d]", i)
		bad := func(format string, args ...any) error {
			return fhir.Errorf(fhir.IssueInvalid, where, "FHIRPath Patch operation %d: %s", i, fmt.Sprintf(format, args...))
		}
		if param.GetString("name") != "operation" {
			return nil, bad("a parameter of a FHIRPath Patch is named \"operation\", not %q", param.GetString("name"))
		}
		op := pathOp{index: i}
		seen := map[string]bool{}
		var ints = map[string]int{}
		parts := param.Get("part")
		if parts == nil {
			return nil, bad("the operation has no parts (type, path ...)")
		}
		for _, part := range parts.Array {
			name := part.GetString("name")
			if seen[name] {
				return nil, bad("part %q given twice", name)
			}
			seen[name] = true
			vkey, v := valueMember(part)
			switch name {
			case "type", "path", "name":
				if v == nil || v.Kind != fhir.KindString {
					return nil, bad("part %q needs a string value", name)
				}
				switch name {
				case "type":
					op.typ = v.Str
				case "path":
					op.path = v.Str
				case "name":
					op.name = v.Str
				}
			case "index", "source", "destination":
				if v == nil || v.Kind != fhir.KindNumber {
					return nil, bad("part %q needs an integer value", name)
				}
				n, err := strconv.Atoi(v.Str)
				if err != nil || n < 0 {
					return nil, bad("part %q: %s is not a non-negative integer", name, v.Str)
				}
				ints[name] = n
			case "value":
				switch {
				case v != nil:
					op.value, op.valueType = v, strings.TrimPrefix(vkey, "value")
				case part.Get("part") != nil:
					op.valueParts = part.Get("part")
				default:
					return nil, bad("part \"value\" has neither a value[x] nor parts")
				}
			default:
				return nil, bad("unknown part %q (a FHIRPath Patch operation has type, path, name, value, index, source, destination)", name)
			}
		}
		if op.path == "" {
			return nil, bad("the part \"path\" is missing")
		}
		hasValue := op.value != nil || op.valueParts != nil
		need := func(cond bool, what string) error {
			if !cond {
				return bad("%s %s: %s", op.typ, op.path, what)
			}
			return nil
		}
		var err error
		switch op.typ {
		case "add":
			err = need(op.name != "" && hasValue, "add needs a name and a value")
		case "insert":
			err = need(hasValue && seen["index"], "insert needs an index and a value")
			op.idx = []int{ints["index"]}
		case "delete":
		case "replace":
			err = need(hasValue, "replace needs a value")
		case "move":
			err = need(seen["source"] && seen["destination"], "move needs a source and a destination")
			op.idx = []int{ints["source"], ints["destination"]}
		default:
			err = bad("type %q is not one of add, insert, delete, replace, move", op.typ)
		}
		if err != nil {
			return nil, err
		}
		if op.expr, err = fhirpath.Compile(op.path); err != nil {
			return nil, bad("path %q is not a FHIRPath expression: %v", op.path, err)
		}
		p = append(p, op)
	}
	return p, nil
}

// valueMember returns the value[x] member of a Parameters part.
func valueMember(part *fhir.Value) (string, *fhir.Value) {
	for _, m := range part.Members {
		if len(m.Key) > len("value") && strings.HasPrefix(m.Key, "value") {
			return m.Key, m.Value
		}
	}
	return "", nil
}

// Apply applies the operations in order.
func (p FHIRPathPatch) Apply(res *fhir.Value) error {
	for _, op := range p {
		if err := op.apply(res); err != nil {
			return err
		}
	}
	return nil
}

// loc is where an element sits in the resource: its parent object, its
// member name, its index when the member is an array (else -1), and
// what the model says of it.
type loc struct {
	parent *fhir.Value
	key    string
	idx    int
	el     *fhir.Element
	node   *fhir.Node // the element's own children, when complex and known
}

// locate maps every value of the tree under v (whose children node
// describes) to its loc.
func locate(v *fhir.Value, node *fhir.Node, out map[*fhir.Value]loc) {
	if v.Kind != fhir.KindObject {
		return
	}
	for _, m := range v.Members {
		el := node.Element(m.Key)
		if m.Value.Kind == fhir.KindArray {
			for i, item := range m.Value.Array {
				n := nodeOf(el, item)
				out[item] = loc{parent: v, key: m.Key, idx: i, el: el, node: n}
				locate(item, n, out)
			}
			continue
		}
		n := nodeOf(el, m.Value)
		out[m.Value] = loc{parent: v, key: m.Key, idx: -1, el: el, node: n}
		locate(m.Value, n, out)
	}
}

// nodeOf is the children node of value v of element el, nil if unknown.
func nodeOf(el *fhir.Element, v *fhir.Value) *fhir.Node {
	if rt := v.GetString("resourceType"); rt != "" {
		return fhir.TypeNode(rt)
	}
	switch {
	case el == nil:
		return nil
	case el.Node != nil:
		return el.Node
	case el.Type != "":
		return fhir.TypeNode(el.Type)
	}
	return nil
}

func (op pathOp) fail(format string, args ...any) error {
	return fhir.Errorf(fhir.IssueProcessing, fmt.Sprintf("Parameters.parameter[%d]", op.index), "FHIRPath Patch operation %d (%s %s): %s", op.index, op.typ, op.path, fmt.Sprintf(format, args...))
}

func (op pathOp) apply(res *fhir.Value) error {
	out, err := op.expr.Evaluate(res, nil)
	if err != nil {
		return op.fail("the path cannot be evaluated: %v", err)
	}
	locs := map[*fhir.Value]loc{}
	locate(res, fhir.TypeNode(res.GetString("resourceType")), locs)
	type target struct {
		v   *fhir.Value
		loc loc
	}
	var ts []target
	for _, it := range out {
		v := it.Node()
		if v == nil {
			return op.fail("the path selects %s, which is no element of the resource (or a primitive with no value)", it.Type())
		}
		l, ok := locs[v]
		if !ok && v != res {
			return op.fail("the path selects %s, which is no element of the resource", it.Type())
		}
		ts = append(ts, target{v, l})
	}
	single := func() (target, error) {
		if len(ts) != 1 {
			return target{}, op.fail("the path selects %d elements; it must select exactly one", len(ts))
		}
		return ts[0], nil
	}
	// list is the repeating element all of ts belong to.
	list := func() (*fhir.Value, string, *fhir.Element, error) {
		if len(ts) == 0 {
			return nil, "", nil, op.fail("the path selects nothing; it must select the elements of a list")
		}
		first := ts[0].loc
		for _, t := range ts {
			if t.v == res || t.loc.idx < 0 || t.loc.parent != first.parent || t.loc.key != first.key {
				return nil, "", nil, op.fail("the path must select the elements of one list")
			}
		}
		return first.parent, first.key, first.el, nil
	}
	switch op.typ {
	case "add":
		t, err := single()
		if err != nil {
			return err
		}
		node := t.loc.node
		if t.v == res {
			node = fhir.TypeNode(res.GetString("resourceType"))
		}
		if t.v.Kind != fhir.KindObject {
			return op.fail("the path selects a primitive, which has no elements to add to")
		}
		key, el := op.name, node.Element(op.name)
		if el == nil && op.valueType != "" && len(node.ChoiceElements(op.name)) > 0 {
			key = op.name + op.valueType
			el = node.Element(key)
		}
		v, err := op.build(el)
		if err != nil {
			return err
		}
		switch cur := t.v.Get(key); {
		case cur != nil && cur.Kind == fhir.KindArray:
			cur.Array = append(cur.Array, v)
		case cur != nil:
			return op.fail("%s is already there and does not repeat: use replace", key)
		case el != nil && el.Many:
			t.v.Set(key, &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{v}})
		default:
			t.v.Set(key, v)
		}
	case "insert":
		parent, key, el, err := list()
		if err != nil {
			return err
		}
		arr := parent.Get(key)
		n := op.idx[0]
		if n > len(arr.Array) {
			return op.fail("index %d is past the end of the list (%d elements)", n, len(arr.Array))
		}
		v, err := op.build(el)
		if err != nil {
			return err
		}
		arr.Array = append(arr.Array, nil)
		copy(arr.Array[n+1:], arr.Array[n:])
		arr.Array[n] = v
	case "delete":
		if len(ts) == 0 {
			return nil // nothing there: deleted already
		}
		t, err := single()
		if err != nil {
			return err
		}
		if t.v == res {
			return op.fail("the whole resource cannot be deleted by a patch")
		}
		l := t.loc
		if l.idx < 0 {
			l.parent.Delete(l.key)
			l.parent.Delete("_" + l.key)
			return nil
		}
		arr := l.parent.Get(l.key)
		arr.Array = append(arr.Array[:l.idx], arr.Array[l.idx+1:]...)
		if ext := l.parent.Get("_" + l.key); ext != nil && ext.Kind == fhir.KindArray && l.idx < len(ext.Array) {
			ext.Array = append(ext.Array[:l.idx], ext.Array[l.idx+1:]...)
		}
		if len(arr.Array) == 0 {
			l.parent.Delete(l.key)
			l.parent.Delete("_" + l.key)
		}
	case "replace":
		t, err := single()
		if err != nil {
			return err
		}
		if t.v == res {
			return op.fail("the whole resource cannot be replaced by a patch; use update")
		}
		l := t.loc
		v, err := op.build(l.el)
		if err != nil {
			return err
		}
		if l.idx >= 0 {
			l.parent.Get(l.key).Array[l.idx] = v
			return nil
		}
		key := l.key
		if l.el != nil && l.el.Choice != "" && op.valueType != "" {
			key = l.el.Choice + op.valueType // valueString replaced by a valueInteger
		}
		for i := range l.parent.Members {
			if l.parent.Members[i].Key == l.key {
				l.parent.Members[i] = fhir.Member{Key: key, Value: v}
			}
		}
	case "move":
		parent, key, _, err := list()
		if err != nil {
			return err
		}
		arr := parent.Get(key)
		src, dst := op.idx[0], op.idx[1]
		if src >= len(arr.Array) || dst >= len(arr.Array) {
			return op.fail("source %d or destination %d is past the end of the list (%d elements)", src, dst, len(arr.Array))
		}
		v := arr.Array[src]
		arr.Array = append(arr.Array[:src], arr.Array[src+1:]...)
		arr.Array = append(arr.Array, nil)
		copy(arr.Array[dst+1:], arr.Array[dst:])
		arr.Array[dst] = v
	}
	return nil
}

// build makes the JSON of the operation's value, for element el (nil:
// unknown): its value[x] as it is, or an object of its parts.
func (op pathOp) build(el *fhir.Element) (*fhir.Value, error) {
	if op.value != nil {
		return Clone(op.value), nil
	}
	return op.buildParts(op.valueParts, nodeOf(el, &fhir.Value{}), 0)
}

// buildParts makes an object of parts: each part's name is a member
// whose value is the part's value[x] or, nested, its own parts. A member
// the model says repeats, or given more than once, is an array.
func (op pathOp) buildParts(parts *fhir.Value, node *fhir.Node, depth int) (*fhir.Value, error) {
	if depth > 32 {
		return nil, op.fail("the value's parts nest deeper than 32 levels")
	}
	obj := fhir.Object()
	for _, part := range parts.Array {
		name := part.GetString("name")
		if name == "" {
			return nil, op.fail("a part of the value has no name")
		}
		el := node.Element(name)
		var v *fhir.Value
		if _, pv := valueMember(part); pv != nil {
			v = Clone(pv)
		} else if sub := part.Get("part"); sub != nil {
			var err error
			if v, err = op.buildParts(sub, nodeOf(el, &fhir.Value{}), depth+1); err != nil {
				return nil, err
			}
		} else {
			return nil, op.fail("the value's part %q has neither a value[x] nor parts", name)
		}
		switch cur := obj.Get(name); {
		case cur != nil && cur.Kind == fhir.KindArray:
			cur.Array = append(cur.Array, v)
		case cur != nil:
			obj.Set(name, &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{cur, v}})
		case el != nil && el.Many:
			obj.Set(name, &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{v}})
		default:
			obj.Set(name, v)
		}
	}
	return obj, nil
}
