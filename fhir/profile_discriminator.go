package fhir

import (
	"fmt"
	"strings"
)

// Slicing discriminators: which slice a value of a sliced element belongs
// to. A discriminator's path is the restricted FHIRPath the specification
// allows there (ElementDefinition.slicing.discriminator.path): element
// names, $this, extension('url'), resolve() and ofType(Type). The
// instance is navigated along the path, and so is the slice's definition,
// where the value to compare may sit on the element itself, in a nested
// slice of an element on the way (the R4 bp profile's component slices
// discriminate on code.coding.code, whose fixed value is in the coding
// slice SBPCode), in the extension definition an extension('url') step
// names, or in the target profile of a resolve() step.

// dstep is one step of a discriminator path.
type dstep struct {
	kind byte   // 'n' element name, 'e' extension(url), 'r' resolve(), 't' ofType(type)
	arg  string // the name, url or type
}

// parseDiscriminator reads a discriminator path. "$this" and "" (the
// value itself) give no step.
func parseDiscriminator(path string) ([]dstep, error) {
	var steps []dstep
	s := strings.TrimSpace(path)
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '$' || s[i] == '_' || s[i] == '[' || s[i] == ']' || s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
			i++
		}
		name := s[:i]
		s = s[i:]
		if name == "" {
			return nil, fmt.Errorf("discriminator %q: a name is expected at %q", path, s)
		}
		if strings.HasPrefix(s, "(") {
			end := closingParen(s)
			if end < 0 {
				return nil, fmt.Errorf("discriminator %q: unbalanced parentheses", path)
			}
			arg := strings.TrimSpace(s[1:end])
			s = s[end+1:]
			switch name {
			case "resolve":
				if arg != "" {
					return nil, fmt.Errorf("discriminator %q: resolve() takes no argument", path)
				}
				steps = append(steps, dstep{kind: 'r'})
			case "extension":
				u, err := quoted(arg)
				if err != nil {
					return nil, fmt.Errorf("discriminator %q: extension(): %v", path, err)
				}
				steps = append(steps, dstep{kind: 'e', arg: u})
			case "ofType":
				t := strings.TrimPrefix(strings.TrimPrefix(arg, "FHIR."), "System.")
				if t == "" || strings.ContainsAny(t, " '\"(),.") {
					return nil, fmt.Errorf("discriminator %q: ofType(%s): not a type", path, arg)
				}
				steps = append(steps, dstep{kind: 't', arg: t})
			default:
				return nil, fmt.Errorf("discriminator %q: %s() is not allowed in a discriminator", path, name)
			}
		} else if name != "$this" {
			if strings.HasPrefix(name, "$") || strings.ContainsAny(name, "[]") {
				return nil, fmt.Errorf("discriminator %q: %q is not an element name", path, name)
			}
			steps = append(steps, dstep{kind: 'n', arg: name})
		}
		if s == "" {
			break
		}
		if s[0] != '.' || len(s) == 1 {
			return nil, fmt.Errorf("discriminator %q: '.' is expected at %q", path, s)
		}
		s = s[1:]
	}
	return steps, nil
}

// closingParen is the index of the parenthesis closing s[0], quotes
// skipped, or -1.
func closingParen(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// quoted is the string literal s ('url' or "url").
func quoted(s string) (string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", fmt.Errorf("%s is not a quoted string", s)
	}
	body := s[1 : len(s)-1]
	if strings.ContainsRune(body, rune(s[0])) || strings.Contains(body, `\`) {
		return "", fmt.Errorf("%s: escapes are not supported in a url", s)
	}
	return body, nil
}

// hit is a value a discriminator path reaches, with its FHIR type where
// the path tells it (a choice member's suffix, a resource's type, the type
// a reference that cannot be resolved names); v is nil for such a
// reference.
type hit struct {
	v   *Value
	typ string
}

// navigate follows steps from item (of type typ, "" if unknown).
func (v *profileValidator) navigate(item *Value, typ string, steps []dstep) []hit {
	cur := []hit{{item, typ}}
	if item.Kind == KindObject && item.GetString("resourceType") != "" {
		cur[0].typ = item.GetString("resourceType")
	}
	for i := 0; i < len(steps); i++ {
		st := steps[i]
		var next []hit
		switch st.kind {
		case 'n':
			want := "" // name.ofType(T): only the member of type T
			if i+1 < len(steps) && steps[i+1].kind == 't' {
				want = steps[i+1].arg
				i++
			}
			for _, c := range cur {
				if c.v == nil || c.v.Kind != KindObject {
					continue
				}
				if x := c.v.Get(st.arg); x != nil {
					for _, y := range arrayItems(x) {
						next = append(next, hit{y, want})
					}
					continue
				}
				for _, m := range c.v.Members {
					suffix, ok := strings.CutPrefix(m.Key, st.arg)
					if !ok || !isTypeSuffix(suffix) || want != "" && !strings.EqualFold(suffix, want) {
						continue
					}
					for _, y := range arrayItems(m.Value) {
						next = append(next, hit{y, choiceType(suffix)})
					}
				}
			}
		case 't':
			for _, c := range cur {
				if c.typ == "" || strings.EqualFold(c.typ, st.arg) {
					next = append(next, c)
				}
			}
		case 'e':
			for _, c := range cur {
				if c.v == nil || c.v.Kind != KindObject {
					continue
				}
				for _, x := range arrayItems(c.v.Get("extension")) {
					if x.Kind == KindObject && x.GetString("url") == st.arg {
						next = append(next, hit{x, "Extension"})
					}
				}
			}
		case 'r':
			for _, c := range cur {
				if c.v == nil || c.v.Kind != KindObject {
					continue
				}
				ref := c.v.GetString("reference")
				if r := v.resolve(ref); r != nil {
					next = append(next, hit{r, r.GetString("resourceType")})
					continue
				}
				// Not here to be read: what the reference says of its type.
				bv := validator{spec: r4(), container: v.container}
				t := strings.TrimPrefix(c.v.GetString("type"), coreSD)
				if t == "" || !bv.isResourceType(t) {
					t = bv.referenceType(ref)
				}
				if t != "" {
					next = append(next, hit{nil, t})
				}
			}
		}
		cur = next
	}
	return cur
}

// choiceType is the FHIR type a choice member's suffix names
// ("Quantity", "dateTime").
func choiceType(suffix string) string {
	if t := r4().types[strings.ToLower(suffix[:1])+suffix[1:]]; t != nil && t.kind == kindPrimitive {
		return t.name
	}
	return suffix
}

// resolve returns the resource a reference names where the validator can
// read it: a contained resource ("#id"), or an entry of the Bundle being
// validated (by fullUrl, or by type and id); nil otherwise.
func (v *profileValidator) resolve(ref string) *Value {
	if ref == "" {
		return nil
	}
	if ref[0] == '#' {
		return v.resolveContained(ref)
	}
	if v.bundle == nil {
		return nil
	}
	for _, e := range arrayItems(v.bundle.Get("entry")) {
		r := e.Get("resource")
		if r == nil || r.Kind != KindObject {
			continue
		}
		full := e.GetString("fullUrl")
		if full == ref || strings.HasSuffix(full, "/"+ref) && strings.Count(ref, "/") == 1 {
			return r
		}
		if r.GetString("resourceType")+"/"+r.GetString("id") == ref {
			return r
		}
	}
	return nil
}

// defsAt returns the element definitions a discriminator path reaches
// from slice sl: the element itself and the nested slices of every
// sliced element on the way (whichever holds the value to compare),
// following an extension('url') into the slice of that extension, and
// the Profiles' extension definitions and target profiles where the
// slice's own snapshot stops.
func (v *profileValidator) defsAt(sl *pelem, steps []dstep) []*pelem {
	cur := []*pelem{sl}
	for i := 0; i < len(steps); i++ {
		st := steps[i]
		var next []*pelem
		switch st.kind {
		case 'n':
			want := ""
			if i+1 < len(steps) && steps[i+1].kind == 't' {
				want = steps[i+1].arg
				i++
			}
			for _, c := range cur {
				for _, k := range v.children(c, st.arg, want) {
					next = appendWithSlices(next, k)
				}
			}
		case 't':
			for _, c := range cur {
				if len(c.types) == 0 || c.allowsType(st.arg) {
					next = append(next, c)
				}
			}
		case 'e':
			for _, c := range cur {
				for _, ext := range v.children(c, "extension", "") {
					for _, s := range ext.slices {
						if s.isExtension(st.arg) {
							next = appendWithSlices(next, s)
						}
					}
				}
			}
		case 'r':
			for _, c := range cur {
				for _, t := range c.types {
					for _, u := range t.targets {
						if p := v.reg.profile(u); p != nil {
							next = append(next, p.root)
						} else if name, core := strings.CutPrefix(u, coreSD); core && r4().types[name] != nil {
							next = append(next, &pelem{name: name, max: 1, types: []ptype{{code: name}}})
						}
					}
				}
			}
		}
		cur = next
	}
	return cur
}

// appendWithSlices appends k and its slices (reslices too).
func appendWithSlices(list []*pelem, k *pelem) []*pelem {
	list = append(list, k)
	for _, s := range k.slices {
		list = appendWithSlices(list, s)
	}
	return list
}

// children are c's child definitions named name (typed: a choice's type
// slice "valueQuantity" where want is "Quantity"); where c's snapshot has
// none (an extension slice, whose content is its extension definition's),
// those of the registered profiles c's types name.
func (v *profileValidator) children(c *pelem, name, want string) []*pelem {
	find := func(kids []*pelem) []*pelem {
		var out []*pelem
		for _, k := range kids {
			switch {
			case want != "" && k.name == name+strings.ToUpper(want[:1])+want[1:]:
				out = append(out, k)
			case k.name == name && (want == "" || !k.choice || len(k.types) == 0 || k.allowsType(want)):
				out = append(out, k)
			}
		}
		return out
	}
	if out := find(c.kids); len(out) > 0 {
		return out
	}
	var out []*pelem
	for _, t := range c.types {
		for _, u := range t.profiles {
			if p := v.reg.profile(u); p != nil {
				out = append(out, find(p.root.kids)...)
			}
		}
	}
	return out
}

func (pe *pelem) allowsType(t string) bool {
	for _, x := range pe.types {
		if strings.EqualFold(x.code, t) {
			return true
		}
	}
	return false
}

// isExtension reports whether the extension slice s is the extension url:
// its type profile, or a url fixed in its definition.
func (s *pelem) isExtension(url string) bool {
	for _, t := range s.types {
		for _, p := range t.profiles {
			if p == url {
				return true
			}
		}
	}
	for _, k := range s.kids {
		if k.name == "url" && k.fixed != nil && k.fixed.Kind == KindString && k.fixed.Str == url {
			return true
		}
	}
	return false
}

// typesOf are the types a discriminator's definitions allow: their type
// codes, or a profile root's type.
func typesOf(defs []*pelem) []string {
	var out []string
	for _, d := range defs {
		for _, t := range d.types {
			out = append(out, t.code)
		}
		if len(d.types) == 0 && d.prof != nil {
			out = append(out, d.prof.typ)
		}
	}
	return out
}

// matches says whether item belongs to slice sl by every one of the
// discriminators ds. A discriminator the slice gives nothing to compare
// with does not match.
func (v *profileValidator) matches(item *Value, ds []discriminator, sl *pelem, k *pelem, name string) bool {
	if len(ds) == 0 {
		return false
	}
	for _, d := range ds {
		defs := v.defsAt(sl, d.steps)
		hits := v.navigate(item, valueType(k, nil, name), d.steps)
		switch d.typ {
		case "value", "pattern":
			ok := false
			for _, def := range defs {
				if def.fixed == nil && def.pattern == nil {
					continue
				}
				for _, h := range hits {
					if h.v != nil && (def.fixed != nil && equalValue(h.v, def.fixed) || def.fixed == nil && containsPattern(h.v, def.pattern)) {
						ok = true
					}
				}
			}
			if !ok {
				return false
			}
		case "exists":
			if len(defs) == 0 {
				return false
			}
			def := defs[0] // the element itself, not a nested slice
			if def.min > 0 && len(hits) == 0 || def.max == 0 && len(hits) > 0 {
				return false
			}
		case "type":
			allowed := typesOf(defs)
			if len(allowed) == 0 || len(hits) == 0 {
				return false
			}
			for _, h := range hits {
				ok := false
				for _, t := range allowed {
					ok = ok || h.typ != "" && strings.EqualFold(t, h.typ)
				}
				if !ok {
					return false
				}
			}
		case "profile":
			if !v.conformsToAny(hits, defs, len(d.steps) > 0 && d.steps[len(d.steps)-1].kind == 'r') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// conformsToAny reports whether some value of hits conforms to a
// registered profile the definitions name: their type profiles, or
// (resolved references) the profiles defsAt reached.
func (v *profileValidator) conformsToAny(hits []hit, defs []*pelem, resolved bool) bool {
	if v.depth > 8 {
		return false
	}
	var profs []*profile
	for _, d := range defs {
		if resolved {
			if d.prof != nil {
				profs = append(profs, d.prof)
			}
			continue
		}
		for _, t := range d.types {
			for _, u := range append(append([]string(nil), t.profiles...), t.targets...) {
				if p := v.reg.profile(u); p != nil {
					profs = append(profs, p)
				}
			}
		}
	}
	for _, p := range profs {
		if p == v.p {
			continue // recursive
		}
		for _, h := range hits {
			if h.v == nil {
				continue
			}
			var issues []Issue
			if h.v.Kind == KindObject && h.v.GetString("resourceType") != "" {
				issues = p.validateAt(v.reg, h.v, h.v.GetString("resourceType"), v.depth+1, v.bundle)
			} else {
				sub := profileValidator{reg: v.reg, p: p, container: v.container, bundle: v.bundle, depth: v.depth + 1}
				sub.element(h.v, p.root)
				issues = sub.issues
			}
			if !HasErrors(issues) {
				return true
			}
		}
	}
	return false
}

// markDiscriminated keeps (from pruning) the elements of each slice that
// its element's discriminators read: an element that narrows nothing
// still says, by its cardinality or types, what an exists or type
// discriminator compares.
func (pe *pelem) markDiscriminated() {
	for _, k := range pe.kids {
		k.markDiscriminated()
	}
	for _, s := range pe.slices {
		s.markDiscriminated()
	}
	if pe.slicing == nil {
		return
	}
	var mark func(sl *pelem)
	mark = func(sl *pelem) {
		for _, d := range pe.slicing.discriminators {
			cur := []*pelem{sl}
			for _, st := range d.steps {
				if st.kind != 'n' {
					break
				}
				var next []*pelem
				for _, c := range cur {
					for _, k := range c.kids {
						if k.name == st.arg || k.choice && strings.HasPrefix(k.name, st.arg) {
							k.keep = true
							next = appendWithSlices(next, k)
						}
					}
				}
				cur = next
			}
		}
		for _, r := range sl.slices {
			mark(r)
		}
	}
	for _, sl := range pe.slices {
		mark(sl)
	}
}
