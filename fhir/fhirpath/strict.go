package fhirpath

import (
	"github.com/kapbridge/kapbridge/fhir"
)

// Strict mode: a static pass over the tree that follows the FHIR types a
// path can reach from the context type and fails on a step the model does
// not have. Where the type becomes unknown (a function result, a
// contained Resource) checking stops, so strict mode rejects only what is
// wrong for certain.

// stype is a FHIR type a sub-expression may yield.
type stype struct {
	name string
	node *fhir.Node
}

// iterating are the functions whose arguments are evaluated once per
// input item, with $this that item.
var iterating = map[string]bool{
	"where": true, "select": true, "exists": true, "all": true, "repeat": true,
	"aggregate": true, "sort": true, "trace": true,
}

// ordered are the functions whose answer depends on the input's order;
// children() and descendants() define none.
var ordered = map[string]bool{"first": true, "last": true, "tail": true, "skip": true, "take": true}

// filtering are the functions whose output is a subset of their input.
var filtering = map[string]bool{
	"where": true, "first": true, "last": true, "tail": true, "skip": true, "take": true,
	"single": true, "distinct": true, "trace": true, "intersect": true, "exclude": true,
}

func (c *compiler) checkStrict(root *node) {
	var ctx []stype
	if c.opts.ContextType != "" {
		ctx = []stype{{c.opts.ContextType, fhir.TypeNode(c.opts.ContextType)}}
	}
	c.infer(root, ctx, ctx)
}

func unordered(n *node) bool {
	if n.kind == nPath {
		n = n.right
	}
	return n.kind == nFunc && (n.name == "children" || n.name == "descendants")
}

// infer returns the types n may yield from inputs of types in; nil means
// unknown (and is never an error).
func (c *compiler) infer(n *node, in, this []stype) []stype {
	if c.err != nil || n == nil {
		return nil
	}
	switch n.kind {
	case nMember:
		return c.inferMember(n, in)
	case nPath:
		l := c.infer(n.left, in, this)
		if n.right.kind == nFunc && ordered[n.right.name] && unordered(n.left) {
			c.fail(Semantic, n.right, "%s() needs an ordered input; %s gives none", n.right.name, n.left.name)
			return nil
		}
		return c.infer(n.right, l, this)
	case nIndex:
		l := c.infer(n.left, in, this)
		c.infer(n.right, this, this)
		if unordered(n.left) {
			c.fail(Semantic, n, "an index needs an ordered input")
		}
		return l
	case nFunc:
		if n.fn != nil && n.fn.typeArg {
			if n.name != "is" && n.argType.ns == nsFHIR {
				return []stype{{n.argType.name, fhir.TypeNode(n.argType.name)}}
			}
			return nil
		}
		for _, a := range n.args {
			if iterating[n.name] {
				c.infer(a, in, in)
			} else {
				c.infer(a, this, this)
			}
		}
		if filtering[n.name] {
			return in
		}
		return nil
	case nType:
		c.infer(n.left, in, this)
		if n.op == "as" && n.typ.ns == nsFHIR {
			return []stype{{n.typ.name, fhir.TypeNode(n.typ.name)}}
		}
		return nil
	case nBinary:
		l := c.infer(n.left, in, this)
		r := c.infer(n.right, in, this)
		if n.op == "|" && l != nil && r != nil {
			return append(append([]stype(nil), l...), r...)
		}
		return nil
	case nUnary:
		c.infer(n.left, in, this)
		return nil
	case nThis:
		return this
	}
	return nil
}

func (c *compiler) inferMember(n *node, in []stype) []stype {
	if in == nil {
		return nil
	}
	var out []stype
	for _, t := range in {
		if n.start && isUpper(n.name) && fhirDerives(t.name, n.name) {
			out = append(out, t)
			continue
		}
		if t.node == nil {
			return nil // a primitive (its id, extension) or a type we cannot see into
		}
		if el := t.node.Element(n.name); el != nil {
			if el.Choice != "" && !c.opts.TypedChoiceNames {
				c.fail(Semantic, n, "%s is the choice element %s[x]: write %s.ofType(%s)", n.name, el.Choice, el.Choice, el.Type)
				return nil
			}
			if el.Type == "" || el.Type == "Resource" || el.Type == "DomainResource" {
				return nil
			}
			out = append(out, stype{el.Type, el.Node})
			continue
		}
		for _, el := range t.node.ChoiceElements(n.name) {
			out = append(out, stype{el.Type, el.Node})
		}
	}
	if len(out) == 0 {
		if n.start && isUpper(n.name) && isFHIRType(n.name) {
			c.fail(Semantic, n, "the input is %s, not %s", in[0].name, n.name)
		} else {
			c.fail(Semantic, n, "%s has no element %s", in[0].name, n.name)
		}
		return nil
	}
	return out
}
