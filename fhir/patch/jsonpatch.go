package patch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// JSONPatch is a parsed JSON Patch document (RFC 6902).
type JSONPatch []jsonOp

type jsonOp struct {
	index    int
	op       string
	path     []string // the JSON Pointer's reference tokens, unescaped
	from     []string
	rawPath  string
	rawFrom  string
	value    *fhir.Value
	hasValue bool
}

// ParseJSONPatch parses a JSON Patch document: an array of operations,
// each an object with op, path and, as the op needs, value or from.
// Members an operation does not use are ignored, as RFC 6902 says.
func ParseJSONPatch(data []byte, lim fhir.Limits) (JSONPatch, error) {
	doc, err := fhir.ParseJSON(data, lim)
	if err != nil {
		return nil, err
	}
	if doc.Kind != fhir.KindArray {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "a JSON Patch document is an array of operations, not a JSON %s", doc.Kind)
	}
	if len(doc.Array) == 0 {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "the JSON Patch document has no operations")
	}
	if len(doc.Array) > MaxOperations {
		return nil, fhir.Errorf(fhir.IssueTooCostly, "", "the JSON Patch document has %d operations; at most %d are taken", len(doc.Array), MaxOperations)
	}
	p := make(JSONPatch, 0, len(doc.Array))
	for i, o := range doc.Array {
		bad := func(format string, args ...any) error {
			return fhir.Errorf(fhir.IssueInvalid, "", "JSON Patch operation %d: %s", i, fmt.Sprintf(format, args...))
		}
		if o.Kind != fhir.KindObject {
			return nil, bad("an operation is an object, not a JSON %s", o.Kind)
		}
		op := jsonOp{index: i}
		str := func(name string) (string, bool, error) {
			v := o.Get(name)
			if v == nil {
				return "", false, nil
			}
			if v.Kind != fhir.KindString {
				return "", false, bad("%q must be a string", name)
			}
			return v.Str, true, nil
		}
		var ok bool
		if op.op, ok, err = str("op"); err != nil {
			return nil, err
		} else if !ok {
			return nil, bad(`"op" is missing`)
		}
		if op.rawPath, ok, err = str("path"); err != nil {
			return nil, err
		} else if !ok {
			return nil, bad(`"path" is missing`)
		}
		if op.path, err = parsePointer(op.rawPath); err != nil {
			return nil, bad("path %q: %v", op.rawPath, err)
		}
		switch op.op {
		case "add", "replace", "test":
			op.value = o.Get("value")
			if op.value == nil {
				return nil, bad(`%s %s: "value" is missing`, op.op, op.rawPath)
			}
			op.hasValue = true
		case "remove":
		case "move", "copy":
			if op.rawFrom, ok, err = str("from"); err != nil {
				return nil, err
			} else if !ok {
				return nil, bad(`%s %s: "from" is missing`, op.op, op.rawPath)
			}
			if op.from, err = parsePointer(op.rawFrom); err != nil {
				return nil, bad("from %q: %v", op.rawFrom, err)
			}
			if op.op == "move" && isPrefix(op.from, op.path) && len(op.from) < len(op.path) {
				return nil, bad("move %s into its own child %s", op.rawFrom, op.rawPath)
			}
		default:
			return nil, bad("op %q is not one of add, remove, replace, move, copy, test", op.op)
		}
		p = append(p, op)
	}
	return p, nil
}

// parsePointer splits a JSON Pointer (RFC 6901) into its unescaped
// reference tokens.
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("a JSON Pointer starts with /")
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(t, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("~ must be followed by 0 or 1")
		}
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

func isPrefix(pre, p []string) bool {
	if len(pre) > len(p) {
		return false
	}
	for i := range pre {
		if pre[i] != p[i] {
			return false
		}
	}
	return true
}

// Apply applies the operations in order. The whole document is the
// unit: a resource whose root a patch replaces or removes is refused.
func (p JSONPatch) Apply(res *fhir.Value) error {
	for _, op := range p {
		if err := op.apply(res); err != nil {
			return err
		}
	}
	return nil
}

func (op jsonOp) fail(format string, args ...any) error {
	where := op.op + " " + op.rawPath
	if op.from != nil {
		where = op.op + " " + op.rawFrom + " to " + op.rawPath
	}
	return fhir.Errorf(fhir.IssueProcessing, "", "JSON Patch operation %d (%s): %s", op.index, where, fmt.Sprintf(format, args...))
}

func (op jsonOp) apply(res *fhir.Value) error {
	if len(op.path) == 0 && op.op != "test" {
		return op.fail("the whole resource cannot be %s; patch its elements", map[string]string{"add": "replaced", "replace": "replaced", "remove": "removed", "move": "replaced", "copy": "replaced"}[op.op])
	}
	switch op.op {
	case "test":
		got, err := op.get(res, op.path, op.rawPath)
		if err != nil {
			return err
		}
		if !Equal(got, op.value) {
			return op.fail("the value at %s is not the one the test expects", op.rawPath)
		}
		return nil
	case "remove":
		_, err := op.remove(res, op.path, op.rawPath)
		return err
	case "add":
		return op.add(res, op.path, Clone(op.value))
	case "replace":
		return op.replace(res, Clone(op.value))
	case "move":
		v, err := op.remove(res, op.from, op.rawFrom)
		if err != nil {
			return err
		}
		return op.add(res, op.path, v)
	case "copy":
		v, err := op.get(res, op.from, op.rawFrom)
		if err != nil {
			return err
		}
		return op.add(res, op.path, Clone(v))
	}
	return op.fail("unknown op")
}

// get returns the value at path.
func (op jsonOp) get(root *fhir.Value, path []string, raw string) (*fhir.Value, error) {
	cur := root
	for i, tok := range path {
		switch cur.Kind {
		case fhir.KindObject:
			next := cur.Get(tok)
			if next == nil {
				return nil, op.fail("%s: no member %q at %s", raw, tok, pointerPrefix(path[:i]))
			}
			cur = next
		case fhir.KindArray:
			n, err := arrayIndex(tok, len(cur.Array), false)
			if err != nil {
				return nil, op.fail("%s: %v", raw, err)
			}
			cur = cur.Array[n]
		default:
			return nil, op.fail("%s: %s is a JSON %s, which has no members", raw, pointerPrefix(path[:i]), cur.Kind)
		}
	}
	return cur, nil
}

// remove takes the value at path out of its parent and returns it.
func (op jsonOp) remove(root *fhir.Value, path []string, raw string) (*fhir.Value, error) {
	parent, err := op.get(root, path[:len(path)-1], raw)
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch parent.Kind {
	case fhir.KindObject:
		v := parent.Get(last)
		if v == nil {
			return nil, op.fail("%s: no member %q to remove", raw, last)
		}
		parent.Delete(last)
		return v, nil
	case fhir.KindArray:
		n, err := arrayIndex(last, len(parent.Array), false)
		if err != nil {
			return nil, op.fail("%s: %v", raw, err)
		}
		v := parent.Array[n]
		parent.Array = append(parent.Array[:n], parent.Array[n+1:]...)
		return v, nil
	}
	return nil, op.fail("%s: the parent is a JSON %s, which has no members", raw, parent.Kind)
}

// replace puts v in place of the value at op.path, where it was (an
// object keeps its member order).
func (op jsonOp) replace(root *fhir.Value, v *fhir.Value) error {
	if _, err := op.get(root, op.path, op.rawPath); err != nil {
		return err
	}
	parent, _ := op.get(root, op.path[:len(op.path)-1], op.rawPath)
	last := op.path[len(op.path)-1]
	if parent.Kind == fhir.KindArray {
		n, _ := arrayIndex(last, len(parent.Array), false)
		parent.Array[n] = v
		return nil
	}
	parent.Set(last, v)
	return nil
}

// add puts v at path: a new or replaced object member, or an array
// element inserted before the index ("-": appended).
func (op jsonOp) add(root *fhir.Value, path []string, v *fhir.Value) error {
	parent, err := op.get(root, path[:len(path)-1], op.rawPath)
	if err != nil {
		return err
	}
	last := path[len(path)-1]
	switch parent.Kind {
	case fhir.KindObject:
		parent.Set(last, v)
		return nil
	case fhir.KindArray:
		n, err := arrayIndex(last, len(parent.Array), true)
		if err != nil {
			return op.fail("%v", err)
		}
		parent.Array = append(parent.Array, nil)
		copy(parent.Array[n+1:], parent.Array[n:])
		parent.Array[n] = v
		return nil
	}
	return op.fail("the parent %s is a JSON %s, which has no members", pointerPrefix(path[:len(path)-1]), parent.Kind)
}

// arrayIndex reads an array reference token: a decimal index without
// leading zeros below n (or equal to n, or "-", when adding).
func arrayIndex(tok string, n int, adding bool) (int, error) {
	if adding && tok == "-" {
		return n, nil
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not an array index", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i > n || i == n && !adding {
		return 0, fmt.Errorf("index %s is past the end of the array (%d elements)", tok, n)
	}
	return i, nil
}

func pointerPrefix(toks []string) string {
	if len(toks) == 0 {
		return "the root"
	}
	var b strings.Builder
	for _, t := range toks {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
