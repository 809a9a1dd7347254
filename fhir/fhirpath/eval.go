package fhirpath

import (
	"fmt"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// Env is what an evaluation sees besides its input. The zero value works:
// %resource and %rootResource are the input resource, now() is the clock.
type Env struct {
	// Resource is %resource, when the input is an element inside it (for
	// an invariant on Observation.component, the Observation).
	Resource *fhir.Value
	// RootResource is %rootResource: the resource that contains Resource
	// (a Bundle, or the resource whose contained list holds it).
	RootResource *fhir.Value
	// Vars are the caller's own variables (%name). A value may be a
	// *fhir.Value (a resource is typed by its resourceType; any other
	// JSON is navigated untyped), a string, bool, int, int64, float64,
	// time.Time, or a Collection from an earlier evaluation.
	Vars map[string]any
	// Now is the clock for now(), today() and timeOfDay(); nil is
	// time.Now. It is read once per evaluation.
	Now func() time.Time
	// Trace receives what trace() sees; nil discards it.
	Trace func(name string, c Collection)
}

// Evaluate runs e on a resource (or nil: no input).
func (e *Expression) Evaluate(resource *fhir.Value, env *Env) (Collection, error) {
	var in []item
	if resource != nil {
		in = []item{resourceItem(resource)}
	}
	return e.run(in, resource, env)
}

// EvaluateElement runs e on an element of FHIR type typ (a data type
// such as "HumanName", or a primitive such as "string") inside resource.
func (e *Expression) EvaluateElement(element *fhir.Value, typ string, resource *fhir.Value, env *Env) (Collection, error) {
	var in []item
	if element != nil {
		in = []item{elementItem(element, nil, typ, fhir.TypeNode(typ))}
	}
	return e.run(in, resource, env)
}

// EvaluateItem runs e on an item of an earlier result (a backbone
// element keeps the children its definition gives it) inside resource.
func (e *Expression) EvaluateItem(in Item, resource *fhir.Value, env *Env) (Collection, error) {
	return e.run([]item{in.it}, resource, env)
}

// Predicate runs e and reads its result as a condition: true when it is
// the single Boolean true; false when false or empty. Any other result is
// an error, as it is for an invariant.
func (e *Expression) Predicate(resource *fhir.Value, env *Env) (bool, error) {
	out, err := e.Evaluate(resource, env)
	if err != nil {
		return false, err
	}
	switch {
	case len(out) == 0:
		return false, nil
	case len(out) == 1:
		if b, ok := out[0].it.sv.(bool); ok {
			return b, nil
		}
	}
	return false, &Error{Kind: Execution, Msg: fmt.Sprintf("%q gives %d items, not a boolean", e.src, len(out))}
}

// Evaluate compiles src (cached) and runs it on resource.
func Evaluate(resource *fhir.Value, src string, env *Env) (Collection, error) {
	e, err := Compile(src)
	if err != nil {
		return nil, err
	}
	return e.Evaluate(resource, env)
}

// evalCtx is one evaluation's state.
type evalCtx struct {
	e        *Expression
	env      *Env
	context  []item
	resource []item
	root     []item
	now      time.Time
	nowSet   bool
	steps    int
	top      scope // the scope of the expression as a whole (evalIn)
}

// evalFailure carries an *Error up through the evaluator's recursion.
type evalFailure struct{ err *Error }

// Bounds on one evaluation, so that no expression (repeat() that keeps
// making new items, combine() nested to double a collection each time,
// strings doubled by +) can run without end or take all memory.
const (
	maxSteps  = 10_000_000
	maxItems  = 1_000_000 // items in one collection
	maxString = 1 << 20   // bytes of one computed string (FHIR's own limit)
)

func (e *Expression) run(in []item, resource *fhir.Value, env *Env) (out Collection, err error) {
	if env == nil {
		env = &Env{}
	}
	c := &evalCtx{e: e, env: env, context: in}
	res := env.Resource
	if res == nil {
		res = resource
	}
	if res != nil {
		c.resource = []item{resourceItem(res)}
	}
	root := env.RootResource
	if root == nil {
		root = res
	}
	if root != nil {
		c.root = []item{resourceItem(root)}
	}
	items, err := e.evalIn(c, in)
	if err != nil {
		return nil, err
	}
	out = make(Collection, len(items))
	for i, it := range items {
		out[i] = Item{it}
	}
	return out, nil
}

// evalIn evaluates e on in with c, whose env, resource and root the
// caller has set: the invariant checker keeps one c for a whole resource.
func (e *Expression) evalIn(c *evalCtx, in []item) (out []item, err error) {
	c.e, c.context, c.steps = e, in, 0
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(evalFailure)
			if !ok {
				panic(r)
			}
			out, err = nil, f.err
		}
	}()
	// The top scope lives in c: taken by pointer, a local would escape
	// and cost an allocation per expression.
	c.top = scope{this: in}
	return c.eval(e.root, in, &c.top), nil
}

func (c *evalCtx) fail(kind ErrorKind, n *node, format string, args ...any) {
	pos := 0
	if n != nil {
		pos = n.pos
	}
	panic(evalFailure{newError(kind, c.e.src, pos, format, args...)})
}

func (c *evalCtx) clock() time.Time {
	if !c.nowSet {
		if c.env.Now != nil {
			c.now = c.env.Now()
		} else {
			c.now = time.Now()
		}
		c.nowSet = true
	}
	return c.now
}

// scope holds $this, $index and $total for the expression being
// evaluated: the top level, or an argument of where(), select() ...
type scope struct {
	this     []item
	index    int
	hasIndex bool
	total    []item
	hasTotal bool
}

func (c *evalCtx) eval(n *node, in []item, sc *scope) []item {
	c.steps++
	if c.steps > maxSteps {
		c.fail(Execution, n, "evaluation exceeded %d steps", maxSteps)
	}
	out := c.evalNode(n, in, sc)
	if len(out) > maxItems {
		c.fail(Execution, n, "a collection of more than %d items", maxItems)
	}
	if len(out) == 1 {
		if s, ok := out[0].sv.(string); ok && len(s) > maxString && out[0].tname == "" {
			c.fail(Execution, n, "a string of more than %d bytes", maxString)
		}
	}
	return out
}

func (c *evalCtx) evalNode(n *node, in []item, sc *scope) []item {
	switch n.kind {
	case nLiteral:
		return []item{n.lit}
	case nEmpty:
		return nil
	case nMember:
		return c.member(n, in)
	case nFunc:
		return n.fn.impl(c, n, in, sc)
	case nPath:
		return c.eval(n.right, c.eval(n.left, in, sc), sc)
	case nIndex:
		l := c.eval(n.left, in, sc)
		idx := c.eval(n.right, sc.this, sc)
		if len(idx) == 0 {
			return nil
		}
		i, ok := c.singleInt(n.right, idx)
		if !ok {
			c.fail(Execution, n.right, "an index must be an integer")
		}
		if i < 0 || i >= int64(len(l)) {
			return nil
		}
		return []item{l[i]}
	case nUnary:
		v := c.eval(n.left, in, sc)
		if len(v) == 0 {
			return nil
		}
		x := c.single(n, v)
		if n.op == "+" {
			if _, ok := c.number(x); !ok {
				if _, ok := x.sv.(quantity); !ok {
					c.fail(Execution, n, "unary + needs a number or a quantity")
				}
			}
			return []item{x}
		}
		return []item{c.negate(n, x)}
	case nBinary:
		return c.binary(n, in, sc)
	case nType:
		v := c.eval(n.left, in, sc)
		return c.typeOp(n, n.op, n.typ, v)
	case nThis:
		return sc.this
	case nIndexVar:
		if !sc.hasIndex {
			return nil
		}
		return []item{sysItem(int64(sc.index))}
	case nTotal:
		return sc.total
	case nVar:
		return c.variable(n)
	}
	c.fail(Execution, n, "unknown expression")
	return nil
}

// variable resolves %name.
func (c *evalCtx) variable(n *node) []item {
	switch n.name {
	case "resource":
		return c.resource
	case "rootResource":
		return c.root
	case "context":
		return c.context
	case "ucum":
		return []item{sysItem("http://unitsofmeasure.org")}
	case "sct":
		return []item{sysItem("http://snomed.info/sct")}
	case "loinc":
		return []item{sysItem("http://loinc.org")}
	}
	if v, ok := c.env.Vars[n.name]; ok {
		return c.userVar(n, v)
	}
	if rest, ok := strings.CutPrefix(n.name, "vs-"); ok {
		return []item{sysItem("http://hl7.org/fhir/ValueSet/" + rest)}
	}
	if rest, ok := strings.CutPrefix(n.name, "ext-"); ok {
		return []item{sysItem("http://hl7.org/fhir/StructureDefinition/" + rest)}
	}
	c.fail(Execution, n, "unknown variable %%%s", n.name)
	return nil
}

func (c *evalCtx) userVar(n *node, v any) []item {
	switch x := v.(type) {
	case nil:
		return nil
	case *fhir.Value:
		if x == nil {
			return nil
		}
		if x.Kind == fhir.KindObject && x.GetString("resourceType") != "" {
			return []item{resourceItem(x)}
		}
		return []item{elementItem(x, nil, "", nil)}
	case string:
		return []item{sysItem(x)}
	case bool:
		return []item{sysItem(x)}
	case int:
		return []item{sysItem(int64(x))}
	case int64:
		return []item{sysItem(x)}
	case float64:
		d, ok := decFromFloat(x)
		if !ok {
			c.fail(Execution, n, "variable %%%s is not a finite number", n.name)
		}
		return []item{sysItem(d)}
	case time.Time:
		return []item{sysItem(dtv{kind: kDateTime, prec: pMilli, tz: true}.fromTime(x).withZone(x))}
	case Collection:
		out := make([]item, len(x))
		for i, it := range x {
			out[i] = it.it
		}
		return out
	}
	c.fail(Execution, n, "variable %%%s has a type FHIRPath cannot hold (%T)", n.name, v)
	return nil
}

func (v dtv) withZone(t time.Time) dtv {
	_, off := t.Zone()
	v.tz, v.tzMin = true, off/60
	return v
}

// member navigates to the child elements called name; at the start of a
// path, a type name instead keeps the inputs of that type (Patient.name).
func (c *evalCtx) member(n *node, in []item) []item {
	var out []item
	for _, it := range in {
		if n.start && it.tname != "" && isUpper(n.name) && fhirDerives(it.tname, n.name) {
			out = append(out, it)
			continue
		}
		out = c.children(n, it, n.name, out)
	}
	return out
}

func isUpper(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }

// children appends it's members called name: choices by their base name
// (value finds valueQuantity), a primitive's id and extensions from its
// "_name" object.
func (c *evalCtx) children(n *node, it item, name string, out []item) []item {
	if it.sv != nil || it.v == nil || it.v.Kind != fhir.KindObject {
		if ti, ok := it.sv.(typeInfo); ok {
			switch name {
			case "namespace":
				return append(out, sysItem(ti.ns))
			case "name":
				return append(out, sysItem(ti.name))
			}
			return out
		}
		if it.ext != nil {
			return appendMember(out, it.ext, name, fhir.TypeNode("Element").Element(name))
		}
		return out
	}
	if it.node == nil {
		// Not described by the model (a resource type R4 lacks): plain JSON.
		if name == "resourceType" {
			return out
		}
		return appendMember(out, it.v, name, nil)
	}
	if el := it.node.Element(name); el != nil {
		if el.Choice != "" && !c.e.opts.TypedChoiceNames {
			c.fail(Semantic, n, "%s is the choice element %s[x]: write %s.ofType(%s)", name, el.Choice, el.Choice, el.Type)
		}
		return appendMember(out, it.v, name, el)
	}
	if choices := it.node.ChoiceElements(name); choices != nil {
		for _, m := range it.v.Members {
			if el := it.node.Element(m.Key); el != nil && el.Choice == name {
				return appendMember(out, it.v, m.Key, el)
			}
		}
	}
	return out
}

// allChildren appends every child element of it, in document order.
func allChildren(it item, out []item) []item {
	o := it.v
	n := it.node
	if it.sv != nil || o == nil || o.Kind != fhir.KindObject {
		if it.ext == nil {
			return out
		}
		o, n = it.ext, fhir.TypeNode("Element")
	}
	for _, m := range o.Members {
		k := m.Key
		if k == "resourceType" {
			continue
		}
		if strings.HasPrefix(k, "_") {
			// the partner of a primitive: taken with it, or alone below
			if o.Get(k[1:]) != nil {
				continue
			}
			k = k[1:]
		}
		out = appendMember(out, o, k, n.Element(k))
	}
	return out
}

// Session evaluates many expressions on one resource (the search
// parameters of a resource being indexed), sharing what they have in
// common: the resource's typed item and the evaluation context. A Session
// is for one goroutine; the zero value is not usable (NewSession).
type Session struct {
	ctx evalCtx
	env Env
	res []item
	in  [1]item
}

// NewSession prepares the evaluation of expressions on resource, with env
// as Evaluate would take it (nil: the zero Env).
func NewSession(resource *fhir.Value, env *Env) *Session {
	s := &Session{}
	if env != nil {
		s.env = *env
	}
	res := s.env.Resource
	if res == nil {
		res = resource
	}
	if resource != nil {
		s.res = []item{resourceItem(resource)}
	}
	s.ctx.env = &s.env
	if res != nil {
		s.ctx.resource = []item{resourceItem(res)}
	}
	root := s.env.RootResource
	if root == nil {
		root = res
	}
	if root != nil {
		s.ctx.root = []item{resourceItem(root)}
	}
	return s
}

// Append evaluates e on the session's resource and appends the result to
// dst.
func (s *Session) Append(dst Collection, e *Expression) (Collection, error) {
	return s.appendOn(dst, e, s.res)
}

// AppendOn evaluates e on in, an item of an earlier result, and appends
// the result to dst.
func (s *Session) AppendOn(dst Collection, e *Expression, in Item) (Collection, error) {
	s.in[0] = in.it
	return s.appendOn(dst, e, s.in[:])
}

func (s *Session) appendOn(dst Collection, e *Expression, in []item) (Collection, error) {
	items, err := e.evalIn(&s.ctx, in)
	if err != nil {
		return dst, err
	}
	for _, it := range items {
		dst = append(dst, Item{it})
	}
	return dst, nil
}
