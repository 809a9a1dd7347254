package fhirpath

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/kapbridge/kapbridge/fhir"
)

// This file evaluates the invariants of the R4 definitions (the
// constraint expressions of every base resource and data type, generated
// into package fhir's tables) on a resource. Package fhir cannot import
// this one (the engine walks fhir.Value), so the checker registers itself
// with fhir at init: fhir.Validate then refuses error-severity violations
// and Profiles.Validate reports warning-severity ones, wherever this
// package is linked (fhir/search imports it, and so every server does).

func init() {
	fhir.RegisterInvariants(CheckInvariants)
	fhir.RegisterConstraintEvaluator(evaluateConstraint)
}

// invariant is one compiled constraint.
type invariant struct {
	fhir.Constraint
	severity fhir.Severity
	expr     *Expression
	// narrative, for txt-1 and txt-2, judges Narrative.div natively.
	narrative func(div string) error
	// broken is why expr did not compile (nil: it did).
	broken error
	// needs: the invariant holds when the element lacks this member.
	needs string
	// quick, when set, answers true where the invariant plainly holds
	// (quick.go); false leaves the element to the engine.
	quick func(item) bool
}

// Deviations from the definitions, each for a stated reason.
var (
	// severityOverride lowers an invariant's severity.
	severityOverride = map[string]fhir.Severity{
		// The official example Questionnaire-zika-virus-exposure-assessment
		// (published as valid R4) has a narrative of whitespace only, and
		// HL7's reference validator accepts it: refusing it would refuse
		// an official example. It is reported as a warning.
		"txt-2": fhir.SeverityWarning,
	}
	// expressionFix corrects R4 invariants that, as published, contradict
	// the FHIRPath R4 uses (and fail valid official examples); each is the
	// correction later FHIR versions made.
	expressionFix = map[string]func(string) string{
		// "answer is Boolean" names System.Boolean, which a FHIR boolean is
		// not (the FHIRPath suite's testType cases): every enableWhen with
		// operator exists would fail. R4B and R5 write "is boolean".
		"que-7": func(x string) string { return strings.ReplaceAll(x, "answer is Boolean", "answer is boolean") },
		// as() needs a single item; dom-3 applies it to all descendants,
		// which fails any resource with contained resources. R5 writes
		// ofType(), which filters as meant.
		"dom-3": func(x string) string { return strings.ReplaceAll(x, "descendants().as(", "descendants().ofType(") },
	}
	// needsMember lists invariants that can only fail when the element
	// has the member named: dom-2 to dom-5 (every resource's) are all
	// "contained.….empty()", true of a resource without contained
	// resources, which is most of them. TestNeedsMember checks each.
	needsMember = map[string]string{"dom-2": "contained", "dom-3": "contained", "dom-4": "contained", "dom-5": "contained"}
	// narrativeRules: R4 gives txt-1 and txt-2 the same expression,
	// htmlChecks(), which checks everything at once; each is judged by its
	// own human text so the issue names the rule broken and why.
	narrativeRules = map[string]func(string) error{
		"txt-1": narrativeMarkup,
		"txt-2": narrativeContent,
	}
)

// compiled holds the compiled form of each constraint list of the tables,
// keyed by the list's first element (the lists are shared and fixed).
var compiled sync.Map // *fhir.Constraint -> []*invariant

// compileList compiles a constraint list once. ele-1 is left out: it is
// checked on every element by CheckInvariants itself.
func compileList(list []fhir.Constraint) []*invariant {
	if len(list) == 0 {
		return nil
	}
	if c, ok := compiled.Load(&list[0]); ok {
		return c.([]*invariant)
	}
	out := make([]*invariant, 0, len(list))
	for _, c := range list {
		if c.Key == "ele-1" {
			continue
		}
		out = append(out, compileInvariant(c))
	}
	compiled.Store(&list[0], out)
	return out
}

func compileInvariant(c fhir.Constraint) *invariant {
	inv := &invariant{Constraint: c, severity: fhir.SeverityError, needs: needsMember[c.Key]}
	if c.Severity == "warning" {
		inv.severity = fhir.SeverityWarning
	}
	if s, ok := severityOverride[c.Key]; ok {
		inv.severity = s
	}
	if f, ok := narrativeRules[c.Key]; ok && c.Expression == "htmlChecks()" {
		inv.narrative = f
		return inv
	}
	src := c.Expression
	if fix, ok := expressionFix[c.Key]; ok {
		src = fix(src)
	}
	e, err := Compile(src)
	if err != nil {
		// Every R4 invariant compiles (TestInvariantsCompile): this is a
		// defect of the engine, reported on every resource it applies to
		// rather than skipped.
		inv.broken = err
		return inv
	}
	inv.expr = e
	inv.quick = quickHolds(e.root)
	return inv
}

var ele1 = sync.OnceValue(func() *invariant {
	for _, c := range fhir.TypeConstraints("Element") {
		if c.Key == "ele-1" {
			return compileInvariant(c)
		}
	}
	panic("fhirpath: the R4 tables have no ele-1")
})

// CheckInvariants evaluates every invariant of severity sev (fhir.SeverityError
// or fhir.SeverityWarning) of the R4 definitions on root, a resource that
// passed fhir.Validate's structural checks: the resource's own and
// DomainResource's, those of each element, the data types' wherever they
// occur, ele-1 on every element, and the same for contained resources and
// the resources of a Bundle or Parameters. Each violation is an issue of
// code invariant naming the key, the definition's text and the element's
// path (e.g. "Observation.referenceRange[0]"). An invariant that cannot be
// evaluated on this input is reported at its own severity as well: a
// resource is not let through unchecked.
func CheckInvariants(root *fhir.Value, sev fhir.Severity) []fhir.Issue {
	return checkInvariants(root, sev, true)
}

// checkInvariants is CheckInvariants; quick false has every invariant
// evaluated by the engine, which the tests compare the quick answers with.
func checkInvariants(root *fhir.Value, sev fhir.Severity, quick bool) []fhir.Issue {
	if root == nil || root.Kind != fhir.KindObject {
		return nil
	}
	rt := root.GetString("resourceType")
	p := resourcePlan(rt)
	if p == nil || p.node == nil {
		return nil // not a type with members: nothing the tables check
	}
	// A checker per call is most of a kilobyte (the evaluation context,
	// the path): pooled, since Validate runs on every resource written.
	k := checkers.Get().(*invChecker)
	k.sev, k.quick = sev, quick
	k.path = append(k.path[:0], rt...)
	k.resource(root, root, p)
	issues := k.issues
	*k = invChecker{path: k.path[:0]}
	checkers.Put(k)
	return issues
}

var checkers = sync.Pool{New: func() any { return &invChecker{path: make([]byte, 0, 256)} }}

type invChecker struct {
	sev       fhir.Severity
	quick     bool // settle the invariants that have a quick answer without the engine
	issues    []fhir.Issue
	path      []byte
	res, root *fhir.Value
	env       Env
	ctx       evalCtx // one evaluation context for the resource at hand
	in        [1]item
	// resIt and rootIt back ctx.resource and ctx.root (no slice allocated
	// per resource); resource() saves and restores them around a nested one.
	resIt, rootIt [1]item
	// contained is set while a contained resource's own invariants run:
	// dom-6 (a narrative) is not asked of those, which R4 says "do not
	// have narrative" (DomainResource.text).
	contained bool
}

// resource checks a resource whose %rootResource is root; p is the plan
// of its type.
func (k *invChecker) resource(v, root *fhir.Value, p *typePlan) {
	savedRes, savedRoot, savedCtx := k.res, k.root, k.ctx
	savedResIt, savedRootIt := k.resIt[0], k.rootIt[0]
	k.res, k.root = v, root
	k.env = Env{Resource: v, RootResource: root}
	it := item{v: v, tname: p.name, node: p.node}
	k.resIt[0] = it
	k.ctx = evalCtx{env: &k.env, resource: k.resIt[:], root: k.resIt[:]}
	if root != v {
		k.rootIt[0] = resourceItem(root)
		k.ctx.root = k.rootIt[:]
	}
	k.contained = v != root
	k.apply(p.inv, it)
	k.contained = false
	if p.members != nil {
		k.members(v, p.members)
	}
	k.res, k.root, k.ctx = savedRes, savedRoot, savedCtx
	k.resIt[0], k.rootIt[0] = savedResIt, savedRootIt
	k.env = Env{Resource: savedRes, RootResource: savedRoot}
}

// members checks each member of obj, an object level planned by n.
func (k *invChecker) members(obj *fhir.Value, n *nodePlan) {
	for _, m := range obj.Members {
		name := m.Key
		if name == "resourceType" || m.Value == nil {
			continue
		}
		val, ext := m.Value, (*fhir.Value)(nil)
		if name != "" && name[0] == '_' {
			if obj.Get(name[1:]) != nil {
				continue // checked with its value
			}
			name, val, ext = name[1:], nil, m.Value
		}
		el := n.elem(name)
		if el == nil {
			continue // refused by the structural checks already
		}
		if el.primitive && val != nil { // a primitive: its extensions too
			ext = getPartner(obj, name)
		}
		arr := val
		if arr == nil {
			arr = ext
		}
		if arr != nil && arr.Kind == fhir.KindArray {
			for i := range arr.Array {
				k.element(el, name, i, index(val, i), index(ext, i))
			}
		} else {
			k.element(el, name, -1, val, ext)
		}
	}
}

// getPartner is obj.Get("_" + name) without building the name.
func getPartner(obj *fhir.Value, name string) *fhir.Value {
	for i := range obj.Members {
		if key := obj.Members[i].Key; len(key) == len(name)+1 && key[0] == '_' && key[1:] == name {
			return obj.Members[i].Value
		}
	}
	return nil
}

func index(v *fhir.Value, i int) *fhir.Value {
	if v == nil || v.Kind != fhir.KindArray || i >= len(v.Array) {
		return nil
	}
	if x := v.Array[i]; x != nil && x.Kind != fhir.KindNull {
		return x
	}
	return nil
}

// element checks one value of el (v, and a primitive's extension object
// ext), the member name of the object at hand, at index i of its array
// (-1: not an array).
func (k *invChecker) element(el *elemPlan, name string, i int, v, ext *fhir.Value) {
	if v == nil && ext == nil {
		return
	}
	if v != nil && v.Kind == fhir.KindObject && (el.resource || !el.complex && v.GetString("resourceType") != "") {
		// a Bundle entry's or a parameter's resource is its own root
		if p := resourcePlan(v.GetString("resourceType")); p != nil {
			root := v
			if el.Name == "contained" {
				root = k.res
			}
			mark := k.push(name, i)
			k.resource(v, root, p)
			k.path = k.path[:mark]
		}
		return
	}
	// The item (a primitive's System value parsed) only when some
	// invariant reads it: most elements have none but ele-1, which
	// holdsEle1 settles.
	ele1Fails := k.sev == fhir.SeverityError && !holdsEle1(v, ext)
	inv := ele1Fails || el.has(k.sev)
	children := v != nil && v.Kind == fhir.KindObject && el.Node != nil
	if !inv && !children && (ext == nil || ext.Kind != fhir.KindObject) {
		return // a primitive's value and nothing more: the path is not needed
	}
	mark := k.push(name, i)
	if inv {
		it := elementItem(v, ext, el.Type, el.Node)
		if ele1Fails {
			k.apply(ele1List(), it)
		}
		k.apply(el.inv, it)
	}
	switch {
	case children:
		k.members(v, el.children())
	case ext != nil && ext.Kind == fhir.KindObject:
		k.members(ext, elementPlan())
	}
	k.path = k.path[:mark]
}

// push appends ".name" or ".name[i]" to the path and returns its length
// before.
func (k *invChecker) push(name string, i int) int {
	mark := len(k.path)
	k.path = append(k.path, '.')
	k.path = append(k.path, name...)
	if i >= 0 {
		k.path = append(k.path, '[')
		k.path = strconv.AppendInt(k.path, int64(i), 10)
		k.path = append(k.path, ']')
	}
	return mark
}

// holdsEle1 answers ele-1 ("hasValue() or (children().count() >
// id.count())") where the answer is plain without the engine: a primitive
// with a value, or an object with a member besides its id. The engine
// judges the rest.
func holdsEle1(v, ext *fhir.Value) bool {
	if v != nil && v.Kind != fhir.KindObject {
		return true
	}
	o := v
	if o == nil {
		o = ext
	}
	if o == nil || o.Kind != fhir.KindObject {
		return false
	}
	for _, m := range o.Members {
		if m.Key != "id" && m.Key != "_id" {
			return true
		}
	}
	return false
}

// apply evaluates the invariants of severity k.sev on it.
func (k *invChecker) apply(list []*invariant, it item) {
	for _, inv := range list {
		if inv.severity != k.sev || k.contained && inv.Key == "dom-6" {
			continue
		}
		if inv.needs != "" && it.v != nil && it.v.Get(inv.needs) == nil {
			continue
		}
		if k.quick && inv.quick != nil && inv.quick(it) {
			continue
		}
		if inv.broken != nil {
			k.report(inv, "could not be compiled: "+inv.broken.Error())
			continue
		}
		if inv.narrative != nil {
			div, ok := value(it).(string)
			if !ok {
				continue // a div of extensions only: nothing to judge
			}
			if err := inv.narrative(div); err != nil {
				k.report(inv, err.Error())
			}
			continue
		}
		k.in[0] = it
		out, err := inv.expr.evalIn(&k.ctx, k.in[:])
		switch {
		case errors.Is(err, ErrNotSupported):
			// No R4 invariant needs what the engine lacks (terminology,
			// profiles; TestInvariantsCompile checks): kept safe anyway.
			k.report(inv, "not evaluated: "+err.Error())
		case err != nil:
			k.report(inv, "could not be evaluated: "+err.Error())
		case len(out) == 1:
			if b, ok := out[0].sv.(bool); ok && b {
				continue
			}
			if _, ok := out[0].sv.(bool); !ok {
				k.report(inv, "could not be evaluated: the expression gives a "+out[0].typeName().String()+", not a Boolean")
				continue
			}
			k.report(inv, "")
		case len(out) == 0:
			// Empty is not a violation: ref-1 on a Reference without a
			// reference ("reference.startsWith('#').not() or ...") is
			// empty, and such references are valid.
		default:
			k.report(inv, "could not be evaluated: the expression gives "+strconv.Itoa(len(out))+" items, not one Boolean")
		}
	}
}

func (k *invChecker) report(inv *invariant, detail string) {
	d := inv.Key + ": " + inv.Human
	if detail != "" {
		d += " (" + detail + ")"
	}
	k.issues = append(k.issues, fhir.Issue{Severity: inv.severity, Code: fhir.IssueInvariant,
		Diagnostics: d, Expression: []string{string(k.path)}})
}

// evaluateConstraint is what fhir.Profiles runs a profile's invariants
// with (fhir.RegisterConstraintEvaluator): as CheckInvariants does, an
// empty answer holds, anything but one Boolean is an error.
func evaluateConstraint(src string, element *fhir.Value, typ string, n *fhir.Node, resource *fhir.Value) (bool, error) {
	e, err := Compile(src)
	if err != nil {
		return false, err
	}
	var in item
	switch {
	case element == resource:
		in = resourceItem(resource)
	default:
		if n == nil {
			n = fhir.TypeNode(typ)
		}
		in = elementItem(element, nil, typ, n)
	}
	out, err := e.run([]item{in}, resource, nil)
	if err != nil {
		return false, err
	}
	switch len(out) {
	case 0:
		return true, nil
	case 1:
		if b, ok := out[0].it.sv.(bool); ok {
			return b, nil
		}
	}
	return false, &Error{Kind: Execution, Msg: fmt.Sprintf("%q gives %d items, not a Boolean", src, len(out))}
}
