package fhir

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
//   - required bindings to ValueSets registered here (RegisterValueSets,
//     RegisterCodeSystems): a code, a Coding, or a CodeableConcept with at
//     least one Coding in the value set; bindings to value sets not
//     registered are left to the base validator;
//   - reference targets (type.targetProfile: the type a literal reference
//     or Reference.type names) and type profiles (type.profile) that are
//     registered, which the value must conform to.
//
// Not checked: slicing (sliced elements are skipped, except type slices
// of a choice such as value[x]:valueQuantity, which constrain that type
// where it is used), invariants
// (constraint expressions, which would need FHIRPath), extensible and
// weaker bindings, maxLength, min/maxValue, and references that cannot be
// resolved to a type.

// ProfileError is how a write refuses a resource that is valid R4 but
// does not meet a profile it claims: processing, HTTP 422.
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

// profile is a compiled StructureDefinition snapshot.
type profile struct {
	url  string
	typ  string
	root *pelem
}

// pelem is one element definition of a snapshot, with its children.
type pelem struct {
	name     string // JSON name, or the base name of a choice ("effective")
	choice   bool
	min, max int // max -1: unbounded
	types    []ptype
	fixed    *Value
	pattern  *Value
	valueSet string // a required binding's value set, without version
	kids     []*pelem
	// bnode is the base R4 definition of the element's content (nil if
	// unknown), and narrows says the element constrains more than the
	// base R4 definition (which Validate already checks): elements that
	// do not, and have no such descendant, are dropped at compile time.
	bnode   *node
	narrows bool
}

type ptype struct {
	code     string
	profiles []string
	targets  []string // resource types and/or registered profile URLs
}

const coreSD = "http://hl7.org/fhir/StructureDefinition/"

// compileProfile reads a StructureDefinition with a snapshot.
func compileProfile(sd *Value) (*profile, error) {
	if sd == nil || sd.GetString("resourceType") != "StructureDefinition" {
		return nil, fmt.Errorf("not a StructureDefinition")
	}
	p := &profile{url: sd.GetString("url"), typ: sd.GetString("type")}
	snap := sd.Get("snapshot").Get("element")
	if snap == nil || snap.Kind != KindArray || len(snap.Array) == 0 {
		return nil, fmt.Errorf("StructureDefinition %s has no snapshot", p.url)
	}
	// Elements are keyed by id, which tells slices apart where the path
	// does not ("Observation.value[x]:valueQuantity.code").
	byID := map[string]*pelem{}
	for i, e := range snap.Array {
		path := e.GetString("path")
		id := e.GetString("id")
		if id == "" {
			id = path
		}
		if i == 0 {
			if p.typ == "" {
				p.typ = path
			}
			if path != p.typ {
				return nil, fmt.Errorf("StructureDefinition %s: first snapshot element %q is not the type %q", p.url, path, p.typ)
			}
			p.root = &pelem{name: path, max: 1}
			if td := r4().types[p.typ]; td != nil {
				p.root.bnode = td.node
			}
			byID[id] = p.root
			continue
		}
		dot := strings.LastIndexByte(id, '.')
		if dot < 0 {
			continue
		}
		name, ok := elementName(id[dot+1:])
		if !ok {
			continue // a slice: slices are not checked
		}
		parent := byID[id[:dot]]
		if parent == nil {
			continue // below a slice, or an element we do not descend into
		}
		pe := &pelem{name: name, max: -1}
		if base, ok := strings.CutSuffix(pe.name, "[x]"); ok {
			pe.name, pe.choice = base, true
		}
		if v := e.Get("min"); v != nil && v.Kind == KindNumber {
			pe.min, _ = strconv.Atoi(v.Str)
		}
		if s := e.GetString("max"); s != "" && s != "*" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("StructureDefinition %s: %s: max %q", p.url, path, s)
			}
			pe.max = n
		}
		for _, t := range arrayItems(e.Get("type")) {
			pt := ptype{code: t.GetString("code")}
			for _, s := range arrayItems(t.Get("profile")) {
				pt.profiles = append(pt.profiles, canonicalURL(s.Str))
			}
			for _, s := range arrayItems(t.Get("targetProfile")) {
				pt.targets = append(pt.targets, canonicalURL(s.Str))
			}
			pe.types = append(pe.types, pt)
		}
		for _, m := range e.Members {
			switch {
			case strings.HasPrefix(m.Key, "fixed") && len(m.Key) > 5:
				pe.fixed = m.Value
			case strings.HasPrefix(m.Key, "pattern") && len(m.Key) > 7:
				pe.pattern = m.Value
			}
		}
		// Required bindings to core value sets are the base validator's.
		if b := e.Get("binding"); b != nil && b.GetString("strength") == "required" && !strings.HasPrefix(b.GetString("valueSet"), "http://hl7.org/fhir/ValueSet/") {
			pe.valueSet = canonicalURL(b.GetString("valueSet"))
		}
		pe.narrows = pe.narrowsBase(parent.bnode, e.Get("base"))
		parent.kids = append(parent.kids, pe)
		byID[id] = pe
	}
	p.root.prune()
	return p, nil
}

// narrowsBase compares the element with its base R4 definition (in the
// parent's base node pn) and sets pe.bnode.
func (pe *pelem) narrowsBase(pn *node, base *Value) bool {
	var ed *elemDef
	choices := 0
	if pn != nil {
		if pe.choice {
			for _, x := range pn.elems {
				if x.choice == pe.name {
					choices++
					ed = x
				}
			}
			if choices != 1 {
				ed = nil // children of a many-typed choice: base unknown
			}
		} else {
			ed = pn.elems[pe.name]
		}
	}
	if ed != nil {
		pe.bnode = ed.node
	}
	if pe.fixed != nil || pe.pattern != nil || pe.valueSet != "" || (pe.choice && len(pe.types) < choices) {
		return true
	}
	// Cardinality: the snapshot's base, else the R4 table's.
	bmin, bmax := -1, -2
	if base != nil {
		if v := base.Get("min"); v != nil {
			bmin, _ = strconv.Atoi(v.Str)
		}
		switch m := base.GetString("max"); m {
		case "*":
			bmax = -1
		case "":
		default:
			bmax, _ = strconv.Atoi(m)
		}
	} else if ed != nil {
		bmin, bmax = ed.min, ed.max
	}
	if pe.min != bmin || pe.max != bmax {
		return true
	}
	for _, t := range pe.types {
		if len(t.profiles) > 0 {
			return true
		}
		if len(t.targets) > 0 && narrowsTargets(t.targets, ed) {
			return true
		}
	}
	return false
}

// narrowsTargets reports whether a Reference's target profiles allow less
// than the base R4 element does.
func narrowsTargets(targets []string, ed *elemDef) bool {
	if ed == nil {
		return true
	}
	for _, t := range targets {
		name, core := strings.CutPrefix(t, coreSD)
		if !core {
			return true // a profile: narrower than its type
		}
		if name == "Resource" {
			return false
		}
		if ed.targets != nil && !contains(ed.targets, name) {
			return true
		}
	}
	return ed.targets == nil || len(targets) < len(ed.targets)
}

// prune drops the children that constrain nothing the base does not; it
// reports whether pe itself is worth checking.
func (pe *pelem) prune() bool {
	kept := pe.kids[:0]
	for _, k := range pe.kids {
		if k.prune() {
			kept = append(kept, k)
		}
	}
	pe.kids = kept
	return pe.narrows || len(pe.kids) > 0
}

// elementName is the JSON name an element id's last segment stands for:
// "code", a choice "value[x]", or for a type slice of a choice
// ("value[x]:valueQuantity", the R4 way to constrain one of its types) the
// typed name "valueQuantity", which holds exactly when that type is used.
// Other slices are not checked: ok is false.
func elementName(seg string) (name string, ok bool) {
	base, slice, sliced := strings.Cut(seg, ":")
	if !sliced {
		return seg, true
	}
	choice, isChoice := strings.CutSuffix(base, "[x]")
	if isChoice && strings.HasPrefix(slice, choice) && isTypeSuffix(slice[len(choice):]) {
		return slice, true
	}
	return "", false
}

func arrayItems(v *Value) []*Value {
	if v == nil {
		return nil
	}
	if v.Kind == KindArray {
		return v.Array
	}
	return []*Value{v}
}

// canonicalURL drops the |version of a canonical reference.
func canonicalURL(s string) string {
	u, _, _ := strings.Cut(s, "|")
	return u
}

// ---- the registry ----

// profileRegistry holds the profiles, value sets and code systems the
// process knows. It is process-wide, like the R4 tables: the conformance
// artifacts are part of the build, and every resource claiming one of them
// is checked the same way wherever it is validated.
type profileRegistry struct {
	mu          sync.RWMutex
	profiles    map[string]*profile
	valueSets   map[string]*Value
	codeSystems map[string]*Value
	expansions  map[string]map[string]struct{} // cache; nil entry: not enumerable
	// hasExtensions: an extension definition is registered, so resources
	// are walked for extensions to check.
	hasExtensions atomic.Bool
}

var registry = &profileRegistry{
	profiles:    map[string]*profile{},
	valueSets:   map[string]*Value{},
	codeSystems: map[string]*Value{},
	expansions:  map[string]map[string]struct{}{},
}

// RegisterProfiles compiles StructureDefinitions (JSON, with a snapshot)
// and makes ValidateWithProfiles check resources that claim them. A URL
// registered again is replaced.
func RegisterProfiles(sds ...[]byte) error {
	return registerEach(sds, "StructureDefinition")
}

// RegisterValueSets registers ValueSets for required-binding checks.
func RegisterValueSets(vss ...[]byte) error { return registerEach(vss, "ValueSet") }

// RegisterCodeSystems registers CodeSystems, whose concepts expand the
// ValueSets that include a whole system.
func RegisterCodeSystems(css ...[]byte) error { return registerEach(css, "CodeSystem") }

// RegisterConformance registers each resource by its type:
// StructureDefinitions, ValueSets and CodeSystems; other types (a
// Questionnaire) are accepted and ignored.
func RegisterConformance(resources ...[]byte) error { return registerEach(resources, "") }

func registerEach(docs [][]byte, want string) error {
	for i, data := range docs {
		v, typ, err := ParseResource(data)
		if err != nil {
			return fmt.Errorf("fhir: register #%d: %w", i, err)
		}
		if want != "" && typ != want {
			return fmt.Errorf("fhir: register #%d: a %s, not a %s", i, typ, want)
		}
		if err := registry.add(v, typ); err != nil {
			return fmt.Errorf("fhir: register #%d: %w", i, err)
		}
	}
	return nil
}

func (r *profileRegistry) add(v *Value, typ string) error {
	url := v.GetString("url")
	if url == "" && (typ == "StructureDefinition" || typ == "ValueSet" || typ == "CodeSystem") {
		return fmt.Errorf("%s without a url", typ)
	}
	var p *profile
	if typ == "StructureDefinition" {
		var err error
		if p, err = compileProfile(v); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch typ {
	case "StructureDefinition":
		r.profiles[url] = p
		if p.typ == "Extension" {
			r.hasExtensions.Store(true)
		}
	case "ValueSet":
		r.valueSets[url] = v
	case "CodeSystem":
		r.codeSystems[url] = v
	default:
		return nil
	}
	clear(r.expansions)
	return nil
}

func (r *profileRegistry) profile(url string) *profile {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.profiles[url]
}

// IsProfileRegistered reports whether ValidateWithProfiles knows url.
func IsProfileRegistered(url string) bool { return registry.profile(canonicalURL(url)) != nil }

// codes returns the expansion of a registered value set as "system|code"
// keys plus "|code" keys (for code elements, whose system is implied);
// ok is false when the value set is unknown or cannot be enumerated
// (filters, systems not registered).
func (r *profileRegistry) codes(url string) (map[string]struct{}, bool) {
	r.mu.RLock()
	set, done := r.expansions[url]
	r.mu.RUnlock()
	if done {
		return set, set != nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set = r.expand(url, 0)
	r.expansions[url] = set
	return set, set != nil
}

// expand runs with r.mu held.
func (r *profileRegistry) expand(url string, depth int) map[string]struct{} {
	vs := r.valueSets[url]
	if vs == nil || depth > 8 {
		return nil
	}
	compose := vs.Get("compose")
	if compose == nil {
		return nil
	}
	set := map[string]struct{}{}
	for _, inc := range arrayItems(compose.Get("include")) {
		part := r.expandPart(inc, depth)
		if part == nil {
			return nil
		}
		for c := range part {
			set[c] = struct{}{}
		}
	}
	for _, exc := range arrayItems(compose.Get("exclude")) {
		part := r.expandPart(exc, depth)
		if part == nil {
			return nil
		}
		for c := range part {
			delete(set, c)
		}
	}
	return set
}

func (r *profileRegistry) expandPart(p *Value, depth int) map[string]struct{} {
	if p.Get("filter") != nil {
		return nil
	}
	system := p.GetString("system")
	var set map[string]struct{}
	add := func(code string) {
		set[system+"|"+code] = struct{}{}
		set["|"+code] = struct{}{}
	}
	if system != "" {
		set = map[string]struct{}{}
		if cs := p.Get("concept"); cs != nil {
			for _, c := range arrayItems(cs) {
				add(c.GetString("code"))
			}
		} else {
			sys := r.codeSystems[system]
			if sys == nil || sys.GetString("content") != "complete" {
				return nil
			}
			var walk func(*Value)
			walk = func(list *Value) {
				for _, c := range arrayItems(list) {
					add(c.GetString("code"))
					walk(c.Get("concept"))
				}
			}
			walk(sys.Get("concept"))
		}
	}
	for _, u := range arrayItems(p.Get("valueSet")) {
		sub := r.expand(canonicalURL(u.Str), depth+1)
		if sub == nil {
			return nil
		}
		if set == nil {
			set = sub
			continue
		}
		for c := range set {
			if _, ok := sub[c]; !ok {
				delete(set, c)
			}
		}
	}
	return set
}

// ---- validation ----

// ValidateWithProfiles checks root against every profile in its
// meta.profile that the registry knows, and every extension in it whose
// url is a registered extension definition. A profile it does not know is
// a warning (the resource is not refused for it), except the base
// definition of the resource's own type, which Validate already checks.
// Callers refuse a resource when HasErrors(issues).
func ValidateWithProfiles(root *Value) []Issue {
	var issues []Issue
	rt := root.GetString("resourceType")
	for _, u := range arrayItems(root.Get("meta").Get("profile")) {
		if u.Kind != KindString {
			continue
		}
		url := canonicalURL(u.Str)
		if url == coreSD+rt {
			continue
		}
		p := registry.profile(url)
		if p == nil {
			issues = append(issues, Issue{Severity: SeverityWarning, Code: IssueNotSupported,
				Diagnostics: "profile " + url + " is not known to this server; the resource was not checked against it",
				Expression:  []string{rt + ".meta.profile"}})
			continue
		}
		issues = append(issues, p.validate(root, rt)...)
	}
	if registry.hasExtensions.Load() {
		w := extensionWalker{path: append(make([]byte, 0, 128), rt...), container: root}
		w.walk(root)
		issues = append(issues, w.issues...)
	}
	return issues
}

// extensionWalker checks every extension whose url is a registered
// extension definition against it, wherever it appears: an extension
// says what it is by its url, so no meta.profile claim is needed.
type extensionWalker struct {
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
		p := registry.profile(ext.GetString("url"))
		if p == nil || p.typ != "Extension" {
			continue
		}
		if list.Kind == KindArray {
			w.path = append(w.path, '[')
			w.path = strconv.AppendInt(w.path, int64(i), 10)
			w.path = append(w.path, ']')
		}
		pv := profileValidator{p: p, container: w.container, path: w.path}
		pv.element(ext, p.root)
		w.issues = append(w.issues, pv.issues...)
		w.path = w.path[:n]
	}
}

// ValidateProfile checks root against the snapshot of the
// StructureDefinition sd (which need not be registered; the value sets
// and profiles it refers to are looked up in the registry). A
// StructureDefinition that cannot be used is one error issue.
func ValidateProfile(root *Value, sd *Value) []Issue {
	p, err := compileProfile(sd)
	if err != nil {
		return []Issue{{Severity: SeverityError, Code: IssueProcessing, Diagnostics: "cannot validate against the profile: " + err.Error()}}
	}
	return p.validate(root, root.GetString("resourceType"))
}

func (p *profile) validate(root *Value, path string) []Issue {
	pv := profileValidator{p: p, container: root, path: append(make([]byte, 0, 128), path...)}
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
	set, ok := registry.codes(url)
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

// target checks the type a Reference points to against the allowed target
// profiles: core type URLs and registered profiles (by their type).
func (v *profileValidator) target(ref *Value, targets []string) {
	bv := validator{spec: r4(), container: v.container}
	got := strings.TrimPrefix(ref.GetString("type"), coreSD)
	if got == "" || !bv.isResourceType(got) {
		got = bv.referenceType(ref.GetString("reference"))
	}
	if got == "" {
		return
	}
	// The type names the targets allow; built only to report a mismatch.
	for _, t := range targets {
		name, core := strings.CutPrefix(t, coreSD)
		if !core {
			p := registry.profile(t)
			if p == nil {
				return // an unknown profile: cannot tell what it allows
			}
			name = p.typ
		}
		if name == "Resource" || name == got {
			return
		}
	}
	allowed := make([]string, 0, len(targets))
	for _, t := range targets {
		if name, core := strings.CutPrefix(t, coreSD); core {
			allowed = append(allowed, name)
		} else {
			allowed = append(allowed, registry.profile(t).typ)
		}
	}
	v.issue(IssueInvalid, "reference to a "+got+" is not allowed here; allowed: "+strings.Join(allowed, ", "))
}

// typeProfiles checks val against the registered type profiles it must
// conform to (one of them, if several).
func (v *profileValidator) typeProfiles(val *Value, urls []string) {
	var first []Issue
	for _, u := range urls {
		p := registry.profile(u)
		if p == nil || p == v.p || v.depth > 8 {
			return // unknown (or recursive): not checked
		}
		sub := profileValidator{p: p, container: v.container, path: append([]byte(nil), v.path...), depth: v.depth + 1}
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
