package fhir

import (
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
//   - reference targets (type.targetProfile: the type a literal reference
//     or Reference.type names) and type profiles (type.profile) that are
//     the Profiles hold, which the value must conform to;
//   - extensions whose url is an extension definition the Profiles hold,
//     wherever they appear.
//
// Not checked: slicing (sliced elements are skipped, except type slices
// of a choice such as value[x]:valueQuantity, which constrain that type
// where it is used), invariants
// (constraint expressions, which would need FHIRPath), extensible and
// weaker bindings, maxLength, min/maxValue, and references that cannot be
// resolved to a type.

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
func (p *Profiles) Validate(root *Value) []Issue {
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
		issues = append(issues, prof.validate(p, root, rt)...)
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
		if p == nil || p.typ != "Extension" {
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
	return p.validateAt(reg, root, path, 0)
}

// validateAt is validate for a resource reached depth profiles deep (a
// reference target validated against its target profile).
func (p *profile) validateAt(reg *Profiles, root *Value, path string, depth int) []Issue {
	pv := profileValidator{reg: reg, p: p, container: root, path: append(make([]byte, 0, 128), path...), depth: depth}
	if root == nil || root.Kind != KindObject {
		pv.issue(IssueStructure, "not a resource")
		return pv.issues
	}
	if rt := root.GetString("resourceType"); rt != "" && rt != p.typ && p.typ != "Resource" && p.typ != "DomainResource" {
		pv.issue(IssueInvalid, "profile "+p.url+" is for a "+p.typ+", not a "+rt)
		return pv.issues
	}
	pv.element(root, p.root)
	return pv.issues
}

type profileValidator struct {
	reg       *Profiles // what the profile refers to: value sets, other profiles
	p         *profile
	container *Value
	path      []byte
	issues    []Issue
	depth     int
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
		v.value(val, k, types)
		return
	}
	m := len(v.path)
	for i, item := range val.Array {
		v.path = append(v.path, '[')
		v.path = strconv.AppendInt(v.path, int64(i), 10)
		v.path = append(v.path, ']')
		if item != nil && item.Kind != KindNull {
			v.value(item, k, types)
		}
		v.path = v.path[:m]
	}
}

// value checks one value at v.path.
func (v *profileValidator) value(val *Value, k *pelem, types []ptype) {
	if k.fixed != nil && !equalValue(val, k.fixed) {
		v.issue(IssueValue, "value must be exactly "+shortJSON(k.fixed))
	}
	if k.pattern != nil && !containsPattern(val, k.pattern) {
		v.issue(IssueValue, "value must match the pattern "+shortJSON(k.pattern))
	}
	if k.valueSet != "" {
		v.binding(val, k.valueSet, types)
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
	target := v.resolveContained(ref.GetString("reference"))
	if target == nil {
		return // of an allowed type; not here to be validated
	}
	var first []Issue
	for _, p := range profiles {
		if v.depth > 8 || p == v.p {
			return // recursive: not checked again
		}
		issues := p.validateAt(v.reg, target, v.containedPath(ref.GetString("reference")), v.depth+1)
		if !HasErrors(issues) {
			return
		}
		if first == nil {
			first = issues
		}
	}
	v.issue(IssueInvalid, "the contained "+got+" this refers to does not meet the target profile "+profiles[0].url)
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

// containedPath is the expression of the contained resource ref names.
func (v *profileValidator) containedPath(ref string) string {
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
		sub := profileValidator{reg: v.reg, p: p, container: v.container, path: append([]byte(nil), v.path...), depth: v.depth + 1}
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
