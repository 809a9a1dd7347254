package fhir

import (
	"fmt"
	"maps"
	"strconv"
	"sync"
)

// Profiles holds compiled profiles (constraint StructureDefinitions,
// extension definitions among them), ValueSets and CodeSystems, by
// canonical URL: what Profiles.Validate checks a resource against. It is
// a value its users are given (the server's configuration, the applier's
// validation through the implementation guide's package), not process
// state: two servers in one process may hold different ones.
//
// A Profiles does not change once built (With makes a new one), so it is
// safe for concurrent use. The nil *Profiles holds nothing.
type Profiles struct {
	profiles    map[string]*profile
	valueSets   map[string]*Value
	codeSystems map[string]*Value
	// extensions: an extension definition is held, so resources are
	// walked for extensions to check.
	extensions bool

	mu         sync.RWMutex                   // guards expansions
	expansions map[string]map[string]struct{} // cache; nil entry: not enumerable
}

// NewProfiles compiles resources (FHIR JSON) into a Profiles:
// StructureDefinitions (with a snapshot), ValueSets and CodeSystems, each
// by its url; resources of other types (a Questionnaire) are accepted and
// left out. A URL given twice keeps the later resource. The error names
// the first resource that is not valid R4 or cannot be used. Only the
// structure is asked of them, not the invariants of their definitions
// (sdf-3 wants every snapshot element's definition text): a copy cut down
// to what validation reads loads.
func NewProfiles(resources ...[]byte) (*Profiles, error) {
	return (*Profiles)(nil).With(resources...)
}

// With returns a new Profiles holding what p holds and resources, as
// NewProfiles reads them; a URL p holds is replaced. p is unchanged.
func (p *Profiles) With(resources ...[]byte) (*Profiles, error) {
	return p.with(resources, false, func(i int) string { return "fhir: profiles: resource #" + strconv.Itoa(i) })
}

// WithReferenced is With for definitions held because the profiles name
// them (extension definitions a profile's slices are typed with, the
// profiles of reference targets, bound ValueSets and their CodeSystems):
// they are judged where a profile or a meta.profile claim calls for them,
// but an extension definition among them is not enforced wherever its
// url appears, as With's are. An official R4 example carries a US Core
// url with a value of another shape (Observation-example-genetics-brcapat's
// us-core-ethnicity): it stays acceptable unless a profile it claims
// asks for US Core's extension.
func (p *Profiles) WithReferenced(resources ...[]byte) (*Profiles, error) {
	return p.with(resources, true, func(i int) string { return "fhir: profiles: referenced resource #" + strconv.Itoa(i) })
}

// with is With (WithReferenced if referenced), naming resource i by
// name(i) in its error.
func (p *Profiles) with(resources [][]byte, referenced bool, name func(int) string) (*Profiles, error) {
	out := &Profiles{
		profiles:    map[string]*profile{},
		valueSets:   map[string]*Value{},
		codeSystems: map[string]*Value{},
		expansions:  map[string]map[string]struct{}{},
	}
	if p != nil {
		maps.Copy(out.profiles, p.profiles)
		maps.Copy(out.valueSets, p.valueSets)
		maps.Copy(out.codeSystems, p.codeSystems)
		out.extensions = p.extensions
	}
	for i, data := range resources {
		v, err := ParseJSON(data, DefaultLimits)
		typ := ""
		if err == nil {
			if issues := validateStructure(v); len(issues) > 0 {
				err = &Error{Code: IssueInvalid, Issues: issues}
			}
			typ = v.GetString("resourceType")
		}
		if err == nil {
			err = out.add(v, typ, referenced)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name(i), err)
		}
	}
	return out, nil
}

// add holds v, a resource of type typ; only while building.
func (p *Profiles) add(v *Value, typ string, referenced bool) error {
	url := v.GetString("url")
	switch typ {
	case "StructureDefinition", "ValueSet", "CodeSystem":
		if url == "" {
			return fmt.Errorf("%s without a url", typ)
		}
	default:
		return nil
	}
	switch typ {
	case "StructureDefinition":
		prof, err := compileProfile(v)
		if err != nil {
			return err
		}
		prof.referenced = referenced
		p.profiles[url] = prof
		p.extensions = p.extensions || prof.typ == "Extension" && !referenced
	case "ValueSet":
		p.valueSets[url] = v
	case "CodeSystem":
		p.codeSystems[url] = v
	}
	return nil
}

// Known reports whether p holds the profile url (a |version is ignored).
func (p *Profiles) Known(url string) bool { return p.profile(canonicalURL(url)) != nil }

func (p *Profiles) profile(url string) *profile {
	if p == nil {
		return nil
	}
	return p.profiles[url]
}

func (p *Profiles) hasExtensions() bool { return p != nil && p.extensions }

// codes returns the expansion of a value set p holds as "system|code"
// keys plus "|code" keys (for code elements, whose system is implied);
// ok is false when the value set is unknown or cannot be enumerated
// (filters, systems p does not hold).
func (p *Profiles) codes(url string) (map[string]struct{}, bool) {
	if p == nil {
		return nil, false
	}
	p.mu.RLock()
	set, done := p.expansions[url]
	p.mu.RUnlock()
	if done {
		return set, set != nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	set = p.expand(url, 0)
	p.expansions[url] = set
	return set, set != nil
}

// expand runs with p.mu held.
func (p *Profiles) expand(url string, depth int) map[string]struct{} {
	vs := p.valueSets[url]
	if vs == nil || depth > 8 {
		return nil
	}
	compose := vs.Get("compose")
	if compose == nil {
		return nil
	}
	set := map[string]struct{}{}
	for _, inc := range arrayItems(compose.Get("include")) {
		part := p.expandPart(inc, depth)
		if part == nil {
			return nil
		}
		for c := range part {
			set[c] = struct{}{}
		}
	}
	for _, exc := range arrayItems(compose.Get("exclude")) {
		part := p.expandPart(exc, depth)
		if part == nil {
			return nil
		}
		for c := range part {
			delete(set, c)
		}
	}
	return set
}

func (p *Profiles) expandPart(part *Value, depth int) map[string]struct{} {
	if part.Get("filter") != nil {
		return nil
	}
	system := part.GetString("system")
	var set map[string]struct{}
	add := func(code string) {
		set[system+"|"+code] = struct{}{}
		set["|"+code] = struct{}{}
	}
	if system != "" {
		set = map[string]struct{}{}
		if cs := part.Get("concept"); cs != nil {
			for _, c := range arrayItems(cs) {
				add(c.GetString("code"))
			}
		} else {
			sys := p.codeSystems[system]
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
	for _, u := range arrayItems(part.Get("valueSet")) {
		sub := p.expand(canonicalURL(u.Str), depth+1)
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
