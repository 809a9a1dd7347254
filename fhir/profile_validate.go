package fhir

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Profile validation: a resource checked against the snapshot of a
// constraint StructureDefinition, on top of the base R4 validation
// (Validate). What is checked, at every path of the snapshot including
// nested backbone elements, unfolded datatypes and choice elements:
//
//   - min and max cardinality (a child's minimum applies where its parent
//     is present, as ElementDefinition.min says);
//   - the types a choice element may take (effective[x] narrowed to
//     dateTime | Period refuses effectiveInstant);
//   - fixed[x] (exactly equal) and pattern[x] (the instance contains the
//     pattern: every member of a pattern object, every item of a pattern
//     array matched by some item of the instance);
//   - required bindings to the ValueSets of the Profiles (with the
//     CodeSystems that expand them): a code, a Coding, or a
//     CodeableConcept with at least one Coding in the value set; bindings
//     to value sets it does not hold are left to the base validator;
//   - extensible bindings likewise, a value outside the set a warning;
//   - reference targets (type.targetProfile: the type a literal reference
//     or Reference.type names; a target that resolves here, a contained
//     resource, validated against the target profiles of its type, with no
//     meta.profile claim asked) and type profiles (type.profile) that the
//     Profiles hold, which the value must conform to;
//   - slicing: each value of a sliced element is assigned to the first
//     slice whose discriminators it matches (value, pattern, exists, type,
//     profile, on every path the specification allows: element paths such
//     as $this, url, code.coding.code, with the value to compare on the
//     element or in a nested slice on the way; extension('url');
//     resolve(), to a contained resource or an entry of the Bundle given
//     to ValidateIn; ofType(Type)) and checked against it; slice
//     cardinality; closed slicing refuses a value no slice matches;
//     reslices (slice/reslice) divide their slice's values the same way;
//     type slices of a choice (value[x]:valueQuantity) constrain that type
//     where it is used;
//   - the profile's own invariants (constraint expressions with the
//     profile as source; the base definitions' are Validate's), evaluated
//     by the FHIRPath engine registered with RegisterConstraintEvaluator,
//     errors refusing, warnings reported; one that cannot be evaluated is
//     a warning;
//   - extensions whose url is an extension definition the Profiles hold,
//     wherever they appear.
//
// Not checked: preferred and example bindings, maxLength, min/maxValue,
// and references that cannot be resolved to a type. A resolve() that
// cannot be followed (a reference to a resource not in the resource or its
// Bundle) matches a type discriminator by the type the reference names,
// and no value, pattern or profile discriminator.

// ProfileError returns the Error for profile issues: processing, 422,
// carrying every issue (warnings too, for the client to see). The issue
// codes stay the element's own problem (required, value, code-invalid ...)
// so a client can tell a missing element from a wrong value.
func ProfileError(issues []Issue) *Error {
	return &Error{Code: IssueProcessing, Issues: issues, Status: http.StatusUnprocessableEntity}
}

// HasErrors reports whether any issue is an error or fatal.
func HasErrors(issues []Issue) bool {
	for _, is := range issues {
		if is.Severity == SeverityError || is.Severity == SeverityFatal {
			return true
		}
	}
	return false
}

// Validate checks root against every profile in its meta.profile that p
// holds, and every extension in it whose url is an extension definition p
// holds. A profile p does not hold is a warning (the resource is not
// refused for it), except the base definition of the resource's own type,
// which Validate (the package function) already checks. It also reports
// the base definitions' warning-severity invariants (Validate reports the
// errors), so a $validate answer lists them. Callers refuse a resource
// when HasErrors(issues). A nil p holds nothing.
func (p *Profiles) Validate(root *Value) []Issue { return p.ValidateIn(root, nil) }

// ValidateIn is Validate for a resource that is an entry of bundle (nil:
// none): references to the bundle's other entries resolve, for resolve()
// in slicing discriminators and for reference targets judged against
// their target profiles.
func (p *Profiles) ValidateIn(root, bundle *Value) []Issue {
	// The base definitions' warning-severity invariants (dom-6, ...): the
	// package Validate reports errors only, its callers refusing on any.
	issues := invariantIssues(root, SeverityWarning)
	rt := root.GetString("resourceType")
	for _, u := range arrayItems(root.Get("meta").Get("profile")) {
		if u.Kind != KindString {
			continue
		}
		url := canonicalURL(u.Str)
		if url == coreSD+rt {
			continue
		}
		prof := p.profile(url)
		if prof == nil {
			issues = append(issues, Issue{Severity: SeverityWarning, Code: IssueNotSupported,
				Diagnostics: "profile " + url + " is not known to this server; the resource was not checked against it",
				Expression:  []string{rt + ".meta.profile"}})
			continue
		}
		issues = append(issues, prof.validateAt(p, root, rt, 0, bundle)...)
	}
	if p.hasExtensions() {
		w := extensionWalker{reg: p, path: append(make([]byte, 0, 128), rt...), container: root}
		w.walk(root)
		issues = append(issues, w.issues...)
	}
	return issues
}

// extensionWalker checks every extension whose url is a registered
// extension definition against it, wherever it appears: an extension
// says what it is by its url, so no meta.profile claim is needed.
type extensionWalker struct {
	reg       *Profiles
	path      []byte
	container *Value
	issues    []Issue
	depth     int
}

func (w *extensionWalker) walk(v *Value) {
	if w.depth > 64 {
		return
	}
	w.depth++
	defer func() { w.depth-- }()
	switch v.Kind {
	case KindArray:
		n := len(w.path)
		for i, item := range v.Array {
			if item == nil {
				continue
			}
			w.path = append(w.path, '[')
			w.path = strconv.AppendInt(w.path, int64(i), 10)
			w.path = append(w.path, ']')
			w.walk(item)
			w.path = w.path[:n]
		}
	case KindObject:
		for _, m := range v.Members {
			if m.Value == nil || (m.Value.Kind != KindObject && m.Value.Kind != KindArray) {
				continue
			}
			n := len(w.path)
			if n > 0 {
				w.path = append(w.path, '.')
			}
			w.path = append(w.path, m.Key...)
			if m.Key == "extension" || m.Key == "modifierExtension" {
				w.extensions(m.Value)
			}
			w.walk(m.Value)
			w.path = w.path[:n]
		}
	}
}

func (w *extensionWalker) extensions(list *Value) {
	n := len(w.path)
	for i, ext := range arrayItems(list) {
		if ext == nil || ext.Kind != KindObject {
			continue
		}
		p := w.reg.profile(ext.GetString("url"))
		if p == nil || p.typ != "Extension" || p.referenced {
			continue
		}
		if list.Kind == KindArray {
			w.path = append(w.path, '[')
			w.path = strconv.AppendInt(w.path, int64(i), 10)
			w.path = append(w.path, ']')
		}
		pv := profileValidator{reg: w.reg, p: p, container: w.container, path: w.path}
		pv.element(ext, p.root)
		w.issues = append(w.issues, pv.issues...)
		w.path = w.path[:n]
	}
}

// ValidateProfile checks root against the snapshot of the
// StructureDefinition sd, which p need not hold; the value sets and
// profiles sd refers to are looked up in p. A StructureDefinition that
// cannot be used is one error issue.
func (p *Profiles) ValidateProfile(root *Value, sd *Value) []Issue {
	prof, err := compileProfile(sd)
	if err != nil {
		return []Issue{{Severity: SeverityError, Code: IssueProcessing, Diagnostics: "cannot validate against the profile: " + err.Error()}}
	}
	return prof.validate(p, root, root.GetString("resourceType"))
}

// validate checks root against p, looking what p refers to up in reg.
func (p *profile) validate(reg *Profiles, root *Value, path string) []Issue {
	return p.validateAt(reg, root, path, 0, nil)
}

// validateAt is validate for a resource reached depth profiles deep (a
// reference target validated against its target profile).
func (p *profile) validateAt(reg *Profiles, root *Value, path string, depth int, bundle *Value) []Issue {
	pv := profileValidator{reg: reg, p: p, container: root, bundle: bundle, path: append(make([]byte, 0, 128), path...), depth: depth}
	if root == nil || root.Kind != KindObject {
		pv.issue(IssueStructure, "not a resource")
		return pv.issues
	}
	if rt := root.GetString("resourceType"); rt != "" && rt != p.typ && p.typ != "Resource" && p.typ != "DomainResource" {
		pv.issue(IssueInvalid, "profile "+p.url+" is for a "+p.typ+", not a "+rt)
		return pv.issues
	}
	if len(p.root.inv) > 0 {
		pv.constraints(p.root.inv, root, p.typ, r4().types[p.typ].nodeOrNil())
	}
	pv.element(root, p.root)
	return pv.issues
}

type profileValidator struct {
	reg       *Profiles // what the profile refers to: value sets, other profiles
	p         *profile
	container *Value
	// bundle is the Bundle the resource is an entry of (nil if none):
	// where resolve() in a discriminator and reference targets look.
	bundle *Value
	path   []byte
	issues []Issue
	depth  int
}

func (v *profileValidator) issue(code IssueType, diag string) {
	is := Issue{Severity: SeverityError, Code: code, Diagnostics: diag + " (profile " + v.p.url + ")"}
	if len(v.path) > 0 {
		is.Expression = []string{string(v.path)}
	}
	v.issues = append(v.issues, is)
}

func (v *profileValidator) push(name string) int {
	n := len(v.path)
	if n > 0 {
		v.path = append(v.path, '.')
	}
	v.path = append(v.path, name...)
	return n
}

// element checks the children of obj (an object at v.path) against pe.
func (v *profileValidator) element(obj *Value, pe *pelem) {
	if obj.Kind != KindObject {
		return
	}
	for _, k := range pe.kids {
		if k.choice {
			v.choice(obj, k)
			continue
		}
		v.member(obj, k, k.name, k.types)
	}
}

// choice checks a choice element: at most one of its typed members, of a
// type the profile allows.
func (v *profileValidator) choice(obj *Value, k *pelem) {
	found := false
	for _, m := range obj.Members {
		key := strings.TrimPrefix(m.Key, "_")
		suffix, ok := strings.CutPrefix(key, k.name)
		if !ok || !isTypeSuffix(suffix) {
			continue
		}
		if m.Key[0] == '_' && obj.Get(key) != nil {
			continue // the value member is checked
		}
		found = true
		var t *ptype
		for i := range k.types {
			if strings.EqualFold(k.types[i].code, suffix) {
				t = &k.types[i]
			}
		}
		if t == nil && len(k.types) > 0 {
			n := v.push(key)
			allowed := make([]string, len(k.types))
			for i, ty := range k.types {
				allowed[i] = k.name + strings.ToUpper(ty.code[:1]) + ty.code[1:]
			}
			v.issue(IssueStructure, key+" is not allowed here; allowed: "+strings.Join(allowed, ", "))
			v.path = v.path[:n]
			continue
		}
		var types []ptype
		if t != nil {
			types = []ptype{*t}
		}
		v.member(obj, k, key, types)
		break
	}
	if !found && k.min > 0 {
		n := v.push(k.name + "[x]")
		v.issue(IssueRequired, "missing required element "+k.name+"[x]")
		v.path = v.path[:n]
	}
}

// isTypeSuffix reports whether s names an R4 type as a choice suffix
// ("DateTime", "Quantity"), so "valueSet" is not taken for value[x].
func isTypeSuffix(s string) bool {
	typeSuffixOnce.Do(func() {
		typeSuffixes = map[string]bool{}
		for name := range r4().types {
			typeSuffixes[strings.ToUpper(name[:1])+name[1:]] = true
		}
	})
	return typeSuffixes[s]
}

var (
	typeSuffixOnce sync.Once
	typeSuffixes   map[string]bool
)

// member checks the member name of obj: its count, then each value.
func (v *profileValidator) member(obj *Value, k *pelem, name string, types []ptype) {
	val := obj.Get(name)
	ext := obj.Get("_" + name)
	count := 0
	switch {
	case val != nil && val.Kind == KindArray:
		count = len(val.Array)
	case val != nil:
		count = 1
	case ext != nil && ext.Kind == KindArray:
		count = len(ext.Array)
	case ext != nil:
		count = 1
	}
	n := v.push(name)
	defer func() { v.path = v.path[:n] }()
	// Slices are judged by the element's discriminators; a copy of a
	// profile that left ElementDefinition.slicing out gives no way to
	// tell which value is which slice, and its slices are not checked.
	if len(k.slices) > 0 && k.slicing != nil && len(k.slicing.discriminators) > 0 {
		// Also when absent: a slice's minimum applies where its element's
		// parent is.
		v.sliced(k, arrayItems(val), val != nil && val.Kind == KindArray, name, types)
	}
	if count < k.min {
		if count == 0 {
			v.issue(IssueRequired, "missing required element "+name)
		} else {
			v.issue(IssueRequired, name+" has "+strconv.Itoa(count)+" values; at least "+strconv.Itoa(k.min)+" are required")
		}
	}
	if k.max >= 0 && count > k.max {
		if k.max == 0 {
			v.issue(IssueStructure, name+" is not allowed here")
		} else {
			v.issue(IssueStructure, name+" has "+strconv.Itoa(count)+" values; at most "+strconv.Itoa(k.max)+" are allowed")
		}
	}
	if val == nil {
		if k.fixed != nil || k.pattern != nil {
			if ext != nil {
				v.issue(IssueValue, name+" has no value, but the profile fixes it")
			}
		}
		return
	}
	if val.Kind != KindArray {
		v.value(val, k, types, name)
		return
	}
	m := len(v.path)
	for i, item := range val.Array {
		v.path = append(v.path, '[')
		v.path = strconv.AppendInt(v.path, int64(i), 10)
		v.path = append(v.path, ']')
		if item != nil && item.Kind != KindNull {
			v.value(item, k, types, name)
		}
		v.path = v.path[:m]
	}
}

// value checks one value at v.path; name is its JSON member name (which
// says a choice's type).
func (v *profileValidator) value(val *Value, k *pelem, types []ptype, name string) {
	if len(k.inv) > 0 {
		v.constraints(k.inv, val, valueType(k, types, name), k.bnode)
	}
	if k.fixed != nil && !equalValue(val, k.fixed) {
		v.issue(IssueValue, "value must be exactly "+shortJSON(k.fixed))
	}
	if k.pattern != nil && !containsPattern(val, k.pattern) {
		v.issue(IssueValue, "value must match the pattern "+shortJSON(k.pattern))
	}
	if k.valueSet != "" {
		v.binding(val, k.valueSet, types)
	}
	if k.extensible != "" {
		n := len(v.issues)
		v.binding(val, k.extensible, types)
		for i := n; i < len(v.issues); i++ {
			v.issues[i].Severity = SeverityWarning
			v.issues[i].Diagnostics = strings.Replace(v.issues[i].Diagnostics, "required value set", "extensible value set", 1)
		}
	}
	for _, t := range types {
		if len(t.targets) > 0 && val.Kind == KindObject {
			v.target(val, t.targets)
		}
		if len(t.profiles) > 0 {
			v.typeProfiles(val, t.profiles)
		}
	}
	if len(k.kids) > 0 && val.Kind == KindObject && v.depth < 64 {
		v.depth++
		v.element(val, k)
		v.depth--
	}
}

// binding checks a required binding to a registered value set.
func (v *profileValidator) binding(val *Value, url string, types []ptype) {
	set, ok := v.reg.codes(url)
	if !ok {
		return // unknown or not enumerable here: the base validator's job
	}
	in := func(c *Value) bool {
		_, ok := set[c.GetString("system")+"|"+c.GetString("code")]
		return ok && c.GetString("code") != ""
	}
	switch val.Kind {
	case KindString: // code
		if _, ok := set["|"+val.Str]; !ok {
			v.issue(IssueCodeInvalid, "code "+quoteShort(val.Str)+" is not in the required value set "+url)
		}
	case KindObject:
		isCoding := val.Get("coding") == nil && val.Get("code") != nil
		for _, t := range types {
			isCoding = t.code == "Coding" || (isCoding && t.code != "CodeableConcept")
		}
		if isCoding {
			if !in(val) {
				v.issue(IssueCodeInvalid, "coding "+val.GetString("system")+"|"+val.GetString("code")+" is not in the required value set "+url)
			}
			return
		}
		for _, c := range arrayItems(val.Get("coding")) { // CodeableConcept
			if in(c) {
				return
			}
		}
		v.issue(IssueCodeInvalid, "no coding is in the required value set "+url)
	}
}

// target checks what a Reference points to against the allowed target
// profiles. A target is a resource type (its core URL) or a profile: a
// profile allows its own type, and when the reference resolves here (a
// contained "#id"), the target itself is validated against the profiles
// of its type; the target need not claim them in meta.profile, as the
// specification asks nothing of the kind. A profile p does not hold (or a
// core URL that is no type, such as the vitalsigns profile when it is not
// registered) cannot be judged, and is let through.
func (v *profileValidator) target(ref *Value, targets []string) {
	bv := validator{spec: r4(), container: v.container}
	got := strings.TrimPrefix(ref.GetString("type"), coreSD)
	if got == "" || !bv.isResourceType(got) {
		got = bv.referenceType(ref.GetString("reference"))
	}
	if got == "" {
		return
	}
	var allowed []string
	var profiles []*profile // the registered profiles of type got
	for _, t := range targets {
		if name, core := strings.CutPrefix(canonicalURL(t), coreSD); core && (name == "Resource" || bv.isResourceType(name)) {
			if name == "Resource" || name == got {
				return
			}
			allowed = append(allowed, name)
			continue
		}
		p := v.reg.profile(canonicalURL(t))
		if p == nil {
			return // an unknown profile: cannot tell what it allows
		}
		if p.typ == got {
			profiles = append(profiles, p)
		}
		allowed = append(allowed, p.typ+" ("+t+")")
	}
	if len(profiles) == 0 {
		v.issue(IssueInvalid, "reference to a "+got+" is not allowed here; allowed: "+strings.Join(allowed, ", "))
		return
	}
	target := v.resolve(ref.GetString("reference"))
	if target == nil {
		return // of an allowed type; not here to be validated
	}
	var first []Issue
	for _, p := range profiles {
		if v.depth > 8 || p == v.p {
			return // recursive: not checked again
		}
		issues := p.validateAt(v.reg, target, v.targetPath(ref.GetString("reference"), target), v.depth+1, v.bundle)
		if !HasErrors(issues) {
			return
		}
		if first == nil {
			first = issues
		}
	}
	v.issue(IssueInvalid, "the "+got+" this refers to does not meet the target profile "+profiles[0].url)
	v.issues = append(v.issues, first...)
}

// resolveContained returns the contained resource a "#id" reference
// names, or nil.
func (v *profileValidator) resolveContained(ref string) *Value {
	if len(ref) < 2 || ref[0] != '#' || v.container == nil {
		return nil
	}
	for _, c := range arrayItems(v.container.Get("contained")) {
		if c.Kind == KindObject && c.GetString("id") == ref[1:] {
			return c
		}
	}
	return nil
}

// targetPath is the expression of the resource target a reference ref
// resolved to: a contained resource's, or a Bundle entry's.
func (v *profileValidator) targetPath(ref string, target *Value) string {
	if ref[0] != '#' {
		for i, e := range arrayItems(v.bundle.Get("entry")) {
			if e.Get("resource") == target {
				return "Bundle.entry[" + strconv.Itoa(i) + "].resource"
			}
		}
		return target.GetString("resourceType")
	}
	rt := v.container.GetString("resourceType")
	for i, c := range arrayItems(v.container.Get("contained")) {
		if c.Kind == KindObject && c.GetString("id") == ref[1:] {
			return rt + ".contained[" + strconv.Itoa(i) + "]"
		}
	}
	return rt
}

// typeProfiles checks val against the registered type profiles it must
// conform to (one of them, if several).
func (v *profileValidator) typeProfiles(val *Value, urls []string) {
	var first []Issue
	for _, u := range urls {
		p := v.reg.profile(u)
		if p == nil || p == v.p || v.depth > 8 {
			return // unknown (or recursive): not checked
		}
		sub := profileValidator{reg: v.reg, p: p, container: v.container, bundle: v.bundle, path: append([]byte(nil), v.path...), depth: v.depth + 1}
		if val.Kind == KindObject && val.GetString("resourceType") != "" {
			sub.container = val
		}
		sub.element(val, p.root)
		if !HasErrors(sub.issues) {
			return
		}
		if first == nil {
			first = sub.issues
		}
	}
	v.issues = append(v.issues, first...)
}

// equalValue is JSON equality, member order aside.
func equalValue(a, b *Value) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case KindBool:
		return a.Bool == b.Bool
	case KindString, KindNumber:
		return a.Str == b.Str
	case KindArray:
		if len(a.Array) != len(b.Array) {
			return false
		}
		for i := range a.Array {
			if !equalValue(a.Array[i], b.Array[i]) {
				return false
			}
		}
		return true
	case KindObject:
		if len(a.Members) != len(b.Members) {
			return false
		}
		for _, m := range a.Members {
			if !equalValue(m.Value, b.Get(m.Key)) {
				return false
			}
		}
		return true
	}
	return true
}

// containsPattern reports whether val has everything pat has.
func containsPattern(val, pat *Value) bool {
	if val == nil || pat == nil {
		return pat == nil
	}
	switch pat.Kind {
	case KindObject:
		if val.Kind != KindObject {
			return false
		}
		for _, m := range pat.Members {
			if !containsPattern(val.Get(m.Key), m.Value) {
				return false
			}
		}
		return true
	case KindArray:
		if val.Kind != KindArray {
			return false
		}
		for _, p := range pat.Array {
			found := false
			for _, x := range val.Array {
				if containsPattern(x, p) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return equalValue(val, pat)
}

func shortJSON(v *Value) string {
	s := string(v.Encode())
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func (t *typeDef) nodeOrNil() *node {
	if t == nil {
		return nil
	}
	return t.node
}

// valueType is the FHIR type of a value of k: the one type k allows, or
// the type a choice's member name gives ("valueQuantity": Quantity).
func valueType(k *pelem, types []ptype, name string) string {
	if len(types) == 1 {
		return types[0].code
	}
	if k.choice {
		suffix := strings.TrimPrefix(name, k.name)
		if suffix != "" {
			if t := r4().types[strings.ToLower(suffix[:1])+suffix[1:]]; t != nil && t.kind == kindPrimitive {
				return t.name
			}
			return suffix
		}
	}
	return ""
}

// ConstraintEvaluator evaluates a FHIRPath invariant on element (of FHIR
// type typ; n its children where typ is a backbone) inside resource, and
// says whether it holds.
type ConstraintEvaluator func(expr string, element *Value, typ string, n *Node, resource *Value) (bool, error)

var constraintEvaluator ConstraintEvaluator

// RegisterConstraintEvaluator installs what evaluates the invariants of
// profiles; package fhirpath registers it at init, as it does the base
// invariants (RegisterInvariants). Without it a profile's invariants are
// reported as not evaluated (a warning), never silently passed.
func RegisterConstraintEvaluator(f ConstraintEvaluator) { constraintEvaluator = f }

// constraints evaluates a profile's invariants on val.
func (v *profileValidator) constraints(list []Constraint, val *Value, typ string, bn *node) {
	var n *Node
	if bn != nil {
		n = modelView().nodes[bn]
	}
	for _, c := range list {
		sev := SeverityError
		if c.Severity == "warning" {
			sev = SeverityWarning
		}
		var holds bool
		err := errNoEvaluator
		if constraintEvaluator != nil {
			holds, err = constraintEvaluator(c.Expression, val, typ, n, v.container)
		}
		switch {
		case err != nil:
			// A profile's expression that does not compile or run (US Core
			// 3.1.0's provenance-1 is not FHIRPath): reported, not refused.
			v.issueSev(SeverityWarning, IssueInvariant, c.Key+": "+c.Human+" (not evaluated: "+err.Error()+")")
		case !holds:
			v.issueSev(sev, IssueInvariant, c.Key+": "+c.Human)
		}
	}
}

var errNoEvaluator = errors.New("no FHIRPath engine is linked (package fhirpath registers one)")

func (v *profileValidator) issueSev(sev Severity, code IssueType, diag string) {
	v.issue(code, diag)
	v.issues[len(v.issues)-1].Severity = sev
}

// sliced assigns each value of the sliced element k to the first slice
// whose discriminators it matches, checks it against that slice, and then
// each slice's cardinality; with closed slicing a value no slice matches
// is refused. Values of a slice that is itself sliced are assigned to its
// reslices the same way. v.path is the element's; array says the values
// are indexed.
func (v *profileValidator) sliced(k *pelem, items []*Value, array bool, name string, types []ptype) {
	var list []indexed
	for i, item := range items {
		if item != nil && item.Kind != KindNull {
			list = append(list, indexed{i, item})
		}
	}
	v.slice(k, k, k.slicing, list, array, name, types)
}

type indexed struct {
	i int
	v *Value
}

// slice assigns the values list of element el (el is k, or a slice of k
// being resliced) to el's slices by sl's discriminators.
func (v *profileValidator) slice(k, el *pelem, sl *slicing, list []indexed, array bool, name string, types []ptype) {
	groups := make([][]indexed, len(el.slices))
	m := len(v.path)
	for _, it := range list {
		if array {
			v.path = append(v.path, '[')
			v.path = strconv.AppendInt(v.path, int64(it.i), 10)
			v.path = append(v.path, ']')
		}
		matched := -1
		for si, s := range el.slices {
			if v.matches(it.v, sl.discriminators, s, k, name) {
				matched = si
				break
			}
		}
		switch {
		case matched >= 0:
			groups[matched] = append(groups[matched], it)
			s := el.slices[matched]
			st := s.types
			if len(st) == 0 {
				st = types
			}
			v.value(it.v, s, st, name)
		case sl.closed:
			v.issue(IssueStructure, name+" value matches none of the slices "+sliceNames(el)+", and the slicing is closed")
		}
		v.path = v.path[:m]
	}
	for si, s := range el.slices {
		c := len(groups[si])
		if c < s.min {
			v.issue(IssueRequired, "slice "+s.sliceName+" of "+name+" has "+strconv.Itoa(c)+" values; at least "+strconv.Itoa(s.min)+" are required")
		}
		if s.max >= 0 && c > s.max {
			v.issue(IssueStructure, "slice "+s.sliceName+" of "+name+" has "+strconv.Itoa(c)+" values; at most "+strconv.Itoa(s.max)+" are allowed")
		}
		if len(s.slices) > 0 {
			// A reslice: by the slice's own discriminators, else its
			// element's.
			rs := s.slicing
			if rs == nil || len(rs.discriminators) == 0 {
				rs = &slicing{discriminators: sl.discriminators, closed: rs != nil && rs.closed}
			}
			v.slice(k, s, rs, groups[si], array, name, types)
		}
	}
}

func sliceNames(k *pelem) string {
	names := make([]string, len(k.slices))
	for i, sl := range k.slices {
		names[i] = sl.sliceName
	}
	return strings.Join(names, ", ")
}
