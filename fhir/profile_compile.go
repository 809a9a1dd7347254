package fhir

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Compiling a StructureDefinition's snapshot into the tree the validator
// walks (profile_validate.go); Profiles (profile_registry.go) holds the
// compiled profiles by URL.

// profile is a compiled StructureDefinition snapshot.
type profile struct {
	url  string
	typ  string
	root *pelem
	// referenced: held for the profiles that name it
	// (Profiles.WithReferenced); an extension definition so held is not
	// enforced wherever its url appears.
	referenced bool
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
	// extensible is an extensible binding's value set: a value outside it
	// is a warning (the binding allows codes beyond it when none fits).
	extensible string
	kids       []*pelem
	// bnode is the base R4 definition of the element's content (nil if
	// unknown), and narrows says the element constrains more than the
	// base R4 definition (which Validate already checks): elements that
	// do not, and have no such descendant, are dropped at compile time.
	bnode   *node
	narrows bool
	// Slicing: a sliced element has its discriminators, rules and slices;
	// a slice has its name (and is checked on the values it matches).
	slicing   *slicing
	slices    []*pelem
	sliceName string
	// invariants the profile adds here (not the base definitions').
	inv []Constraint
	// keep: a discriminator of an enclosing slicing reads the element,
	// so pruning keeps it.
	keep bool
	// prof is the profile whose root this is (nil below the root).
	prof *profile
}

// slicing is an element's ElementDefinition.slicing.
type slicing struct {
	discriminators []discriminator
	closed         bool // rules closed: every value must match a slice
}

type discriminator struct {
	typ, path string
	steps     []dstep
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
			p.root = &pelem{name: path, max: 1, prof: p}
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
			// A slice of the element named before the colon.
			base, sliceName, _ := strings.Cut(id[dot+1:], ":")
			sliced := byID[id[:dot]+"."+base]
			if i := strings.LastIndexByte(sliceName, '/'); i >= 0 {
				// A reslice ("VSCat/sub") slices the values of its slice.
				sliced = byID[id[:dot]+"."+base+":"+sliceName[:i]]
			}
			if sliced == nil {
				continue // below an element we skip
			}
			sl := &pelem{name: sliced.name, choice: sliced.choice, sliceName: sliceName, max: -1, bnode: sliced.bnode, narrows: true}
			if err := sl.read(e, p.url, path); err != nil {
				return nil, err
			}
			sliced.slices = append(sliced.slices, sl)
			byID[id] = sl
			continue
		}
		parent := byID[id[:dot]]
		if parent == nil {
			continue // an element we do not descend into
		}
		pe := &pelem{name: name, max: -1}
		if base, ok := strings.CutSuffix(pe.name, "[x]"); ok {
			pe.name, pe.choice = base, true
		}
		if err := pe.read(e, p.url, path); err != nil {
			return nil, err
		}
		nb := pe.narrowsBase(parent.bnode, e.Get("base"))
		pe.narrows = pe.narrows || nb
		parent.kids = append(parent.kids, pe)
		byID[id] = pe
	}
	if root := snap.Array[0]; root != nil {
		p.root.inv = profileConstraints(root, p.url)
	}
	p.root.markDiscriminated()
	p.root.prune()
	return p, nil
}

// read sets what an element definition e says of pe: cardinality,
// types, fixed and pattern values, a required binding, slicing and the
// profile's own invariants.
func (pe *pelem) read(e *Value, url, path string) error {
	if v := e.Get("min"); v != nil && v.Kind == KindNumber {
		pe.min, _ = strconv.Atoi(v.Str)
	}
	if s := e.GetString("max"); s != "" && s != "*" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("StructureDefinition %s: %s: max %q", url, path, s)
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
	if b := e.Get("binding"); b != nil && b.GetString("strength") == "extensible" {
		pe.extensible = canonicalURL(b.GetString("valueSet"))
		pe.narrows = true
	}
	if sl := e.Get("slicing"); sl != nil {
		pe.slicing = &slicing{closed: sl.GetString("rules") == "closed"}
		for _, d := range arrayItems(sl.Get("discriminator")) {
			steps, err := parseDiscriminator(d.GetString("path"))
			if err != nil {
				return fmt.Errorf("StructureDefinition %s: %s: %v", url, path, err)
			}
			pe.slicing.discriminators = append(pe.slicing.discriminators, discriminator{typ: d.GetString("type"), path: d.GetString("path"), steps: steps})
		}
	}
	pe.inv = profileConstraints(e, url)
	if len(pe.inv) > 0 {
		pe.narrows = true
	}
	return nil
}

// profileConstraints are the invariants of element definition e that the
// profile url adds: the base definitions' (ele-1, dom-*, obs-3 ...) are
// Validate's, whatever source a snapshot gives them.
func profileConstraints(e *Value, url string) []Constraint {
	var out []Constraint
	for _, c := range arrayItems(e.Get("constraint")) {
		key, src, x := c.GetString("key"), c.GetString("source"), c.GetString("expression")
		if x == "" || (src != "" && src != url) || baseInvariantKeys()[key] {
			continue
		}
		out = append(out, Constraint{Key: key, Severity: c.GetString("severity"), Human: c.GetString("human"), Expression: x})
	}
	return out
}

var baseInvariantKeys = sync.OnceValue(func() map[string]bool {
	keys := map[string]bool{}
	add := func(list []Constraint) {
		for _, c := range list {
			keys[c.Key] = true
		}
	}
	for _, t := range r4().types {
		add(t.inv)
		if t.node != nil {
			seen := map[*node]bool{}
			var walk func(n *node)
			walk = func(n *node) {
				if n == nil || seen[n] {
					return
				}
				seen[n] = true
				for _, ed := range n.elems {
					add(ed.inv)
					walk(ed.node)
				}
			}
			walk(t.node)
		}
	}
	return keys
})

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
	for _, sl := range pe.slices {
		sl.prune() // kept: a slice always narrows its element
	}
	return pe.narrows || pe.keep || len(pe.kids) > 0 || len(pe.slices) > 0
}

// elementName is the JSON name an element id's last segment stands for:
// "code", a choice "value[x]", or for a type slice of a choice
// ("value[x]:valueQuantity", the R4 way to constrain one of its types) the
// typed name "valueQuantity", which holds exactly when that type is used.
// For other slices ok is false: compileProfile reads them as slices.
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
