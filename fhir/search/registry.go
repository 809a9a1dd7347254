package search

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/kapbridge/kapbridge/fhir/fhirpath"
)

// params.json.gz is written by internal/paramgen (see generate.go) from the
// official R4 core package.
//
//go:embed params.json.gz
var paramsGz []byte

// The embedded table's shape; internal/paramgen writes it.
type tableFile struct {
	Types []struct {
		Name   string `json:"n"`
		Params []struct {
			Code    string   `json:"c"`
			URL     string   `json:"u"`
			Type    string   `json:"t"`
			Expr    string   `json:"x"`
			Targets []string `json:"to"`
			Comps   []struct {
				URL  string `json:"u"`
				Expr string `json:"x"`
			} `json:"cp"`
		} `json:"p"`
	} `json:"types"`
	Elems []struct {
		Name  string `json:"n"`
		Base  string `json:"b"`
		Kind  string `json:"k"`
		Elems []struct {
			Path   string   `json:"p"`
			Types  []string `json:"t"`
			Choice bool     `json:"c"`
			Ref    string   `json:"r"`
			Inline bool     `json:"i"`
		} `json:"e"`
	} `json:"elems"`
	Comp map[string][]struct {
		Type   string   `json:"t"`
		Params []string `json:"p"`
	} `json:"comp"`
}

// typeInfo is one FHIR type as the evaluator sees it: a base type, a data
// type profile (Age) sharing its base's elements, or a backbone element
// ("Observation.component") defined inline in its resource.
type typeInfo struct {
	name     string
	resource bool
	base     *typeInfo
	elems    map[string]*elemInfo
	// extractAs is the nearest type (itself or an ancestor) that
	// extraction knows: Age extracts as Quantity. Empty for backbones.
	extractAs string
}

// elemInfo is one element of a type. A choice (value[x]) maps each type
// suffix ("Quantity") to its type.
type elemInfo struct {
	typ      *typeInfo
	bySuffix map[string]*typeInfo // choices only
}

// isA says whether t is target or derives from it.
func (t *typeInfo) isA(target *typeInfo) bool {
	for ; t != nil; t = t.base {
		if t == target {
			return true
		}
	}
	return false
}

// paramDef is a Param with its compiled expressions.
type paramDef struct {
	p     *Param
	expr  *fhirpath.Expression
	comps []*fhirpath.Expression // composite: one per component, relative to expr's nodes
}

// searchOptions compile the parameters' expressions as the R4 search
// parameters are written: as filters a collection, and resolve() tests
// the type a reference names (see fhirpath.Options).
var searchOptions = fhirpath.Options{FilterAs: true, ReferenceTypes: true}

func compile(src string) (*fhirpath.Expression, error) {
	return fhirpath.CompileWith(src, searchOptions)
}

type registry struct {
	types    map[string]*typeInfo
	params   map[string][]*paramDef // resource type -> sorted by code
	byCode   map[string]map[string]*paramDef
	public   map[string][]*Param
	comp     map[string]map[string][]*Param // compartment -> type -> params
	compType map[string][]string
}

var (
	regOnce sync.Once
	reg     *registry
)

// r4 returns the registry, loaded (a few milliseconds) on first use.
func r4() *registry {
	regOnce.Do(func() {
		r, err := loadRegistry(paramsGz)
		if err != nil {
			// The table is generated and embedded, and its expressions
			// are compiled by the tests: failing here is a build defect.
			panic("search: embedded parameter table: " + err.Error())
		}
		reg = r
	})
	return reg
}

// extractKinds are the types extraction handles, for typeInfo.extractAs.
var extractKinds = map[string]bool{
	"Coding": true, "CodeableConcept": true, "Identifier": true, "ContactPoint": true,
	"Reference": true, "Quantity": true, "Money": true, "Range": true, "Period": true,
	"Timing": true, "HumanName": true, "Address": true, "Extension": true, "SampledData": true,
	"boolean": true, "string": true, "markdown": true, "code": true, "id": true,
	"uri": true, "url": true, "canonical": true, "oid": true, "uuid": true,
	"date": true, "dateTime": true, "instant": true, "time": true,
	"decimal": true, "integer": true, "positiveInt": true, "unsignedInt": true,
}

func loadRegistry(gz []byte) (*registry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var f tableFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	r := &registry{
		types:    map[string]*typeInfo{},
		params:   map[string][]*paramDef{},
		byCode:   map[string]map[string]*paramDef{},
		public:   map[string][]*Param{},
		comp:     map[string]map[string][]*Param{},
		compType: map[string][]string{},
	}
	for _, t := range f.Elems {
		r.types[t.Name] = &typeInfo{name: t.Name, resource: t.Kind == "r", elems: map[string]*elemInfo{}}
	}
	for _, t := range f.Elems {
		r.types[t.Name].base = r.types[t.Base]
	}
	// Backbone types, then elements: an element's type may be a backbone
	// defined further down, or referenced from elsewhere (Questionnaire.item.item).
	for _, t := range f.Elems {
		for _, e := range t.Elems {
			if e.Inline {
				bb := &typeInfo{name: t.Name + "." + e.Path, elems: map[string]*elemInfo{}}
				if len(e.Types) > 0 {
					bb.base = r.types[e.Types[0]]
				}
				r.types[bb.name] = bb
			}
		}
	}
	for _, t := range f.Elems {
		for _, e := range t.Elems {
			owner := r.types[t.Name]
			name := e.Path
			if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
				owner = r.types[t.Name+"."+e.Path[:i]]
				name = e.Path[i+1:]
			}
			if owner == nil {
				continue
			}
			ei := &elemInfo{}
			switch {
			case e.Inline:
				ei.typ = r.types[t.Name+"."+e.Path]
			case e.Ref != "":
				ei.typ = r.types[t.Name+"."+e.Ref]
			case e.Choice:
				ei.bySuffix = map[string]*typeInfo{}
				for _, c := range e.Types {
					if ct := r.types[c]; ct != nil {
						ei.bySuffix[strings.ToUpper(c[:1])+c[1:]] = ct
					}
				}
			default:
				ei.typ = r.types[e.Types[0]]
			}
			if ei.typ == nil && ei.bySuffix == nil {
				continue
			}
			owner.elems[name] = ei
		}
	}
	for _, t := range r.types {
		// Profiles (Age, SimpleQuantity) have no elements of their own.
		if len(t.elems) == 0 && t.base != nil {
			for b := t.base; b != nil; b = b.base {
				if len(b.elems) > 0 {
					t.elems = b.elems
					break
				}
			}
		}
		for a := t; a != nil; a = a.base {
			if extractKinds[a.name] {
				t.extractAs = a.name
				break
			}
		}
	}

	for _, tp := range f.Types {
		byURL := map[string]*paramDef{}
		codes := map[string]*paramDef{}
		var defs []*paramDef
		for _, p := range tp.Params {
			x, err := compile(p.Expr)
			if err != nil {
				return nil, err
			}
			pd := &paramDef{
				p:    &Param{Code: p.Code, URL: p.URL, Type: ParamType(p.Type), Expression: p.Expr, Targets: p.Targets},
				expr: x,
			}
			defs = append(defs, pd)
			byURL[p.URL] = pd
			codes[p.Code] = pd
		}
		for i, p := range tp.Params {
			pd := defs[i]
			for _, c := range p.Comps {
				cx, err := compile(c.Expr)
				if err != nil {
					return nil, err
				}
				pd.comps = append(pd.comps, cx)
				pd.p.Components = append(pd.p.Components, Component{Param: byURL[c.URL].p, Expression: c.Expr})
			}
		}
		findAliases(defs)
		r.params[tp.Name] = defs
		r.byCode[tp.Name] = codes
		pub := make([]*Param, len(defs))
		for i, d := range defs {
			pub[i] = d.p
		}
		r.public[tp.Name] = pub
	}
	for name, cts := range f.Comp {
		m := map[string][]*Param{}
		for _, ct := range cts {
			var ps []*Param
			for _, code := range ct.Params {
				if d := r.byCode[ct.Type][code]; d != nil {
					ps = append(ps, d.p)
				}
			}
			if len(ps) > 0 {
				m[ct.Type] = ps
				r.compType[name] = append(r.compType[name], ct.Type)
			}
		}
		sort.Strings(r.compType[name])
		r.comp[name] = m
	}
	return r, nil
}

// findAliases sets Alias on the parameters of one resource type whose
// values are those of others (see Param.Alias): about a quarter of an
// Observation's index rows were such copies (combo-code, combo-value-*,
// the combo composites, patient), written on every version and never
// needed.
func findAliases(defs []*paramDef) {
	ok := func(p *Param) bool { return p.Type != Special && !strings.HasPrefix(p.Code, "_") }
	parts := make([]map[string]bool, len(defs))
	for i, d := range defs {
		parts[i] = map[string]bool{}
		for _, part := range strings.Split(d.p.Expression, " | ") {
			parts[i][strings.TrimSpace(part)] = true
		}
	}
	// A union: P's expression parts are exactly covered by the parts of
	// other parameters of its shape, each of which has only parts of P.
	for i, d := range defs {
		p := d.p
		if !ok(p) || len(parts[i]) < 2 {
			continue
		}
		covered := map[string]bool{}
		var codes []string
		for j, q := range defs {
			if j == i || !ok(q.p) || len(parts[j]) >= len(parts[i]) || !sameShape(p, q.p) || !subset(parts[j], parts[i]) {
				continue
			}
			codes = append(codes, q.p.Code)
			for part := range parts[j] {
				covered[part] = true
			}
		}
		if len(covered) == len(parts[i]) {
			p.Alias = codes
		}
	}
	// X.where(resolve() is T): the values of X's parameter that reference
	// a T.
	for _, d := range defs {
		p := d.p
		const pre = ".where(resolve() is "
		i := strings.LastIndex(p.Expression, pre)
		if !ok(p) || p.Type != Reference || i < 0 || !strings.HasSuffix(p.Expression, ")") || strings.Contains(p.Expression, " | ") {
			continue
		}
		typ := p.Expression[i+len(pre) : len(p.Expression)-1]
		var codes []string
		for _, q := range defs {
			if q != d && ok(q.p) && q.p.Type == Reference && q.p.Expression == p.Expression[:i] {
				codes = append(codes, q.p.Code)
			}
		}
		if len(codes) > 0 && isTypeName(typ) {
			p.Alias, p.AliasRefType = codes, typ
		}
	}
	// An alias of an alias has no values of its own to read: drop those
	// from the list, and the alias itself if what is left does not cover
	// its expression.
	isAlias := map[string]bool{}
	for _, d := range defs {
		if len(d.p.Alias) > 0 {
			isAlias[d.p.Code] = true
		}
	}
	for i, d := range defs {
		p := d.p
		if len(p.Alias) == 0 {
			continue
		}
		keep := p.Alias[:0:0]
		covered := map[string]bool{}
		for _, c := range p.Alias {
			if isAlias[c] {
				continue
			}
			keep = append(keep, c)
			for j, q := range defs {
				if q.p.Code == c {
					for part := range parts[j] {
						covered[part] = true
					}
				}
			}
		}
		if len(keep) == 0 || (p.AliasRefType == "" && len(covered) != len(parts[i])) {
			p.Alias, p.AliasRefType = nil, ""
			continue
		}
		p.Alias = keep
	}
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// sameShape: q's index values can stand for p's: same type and, for a
// composite, the same components.
func sameShape(p, q *Param) bool {
	if p.Type != q.Type || len(p.Components) != len(q.Components) {
		return false
	}
	for i, c := range p.Components {
		qc := q.Components[i]
		if c.Expression != qc.Expression || c.Param == nil || qc.Param == nil || c.Param.Type != qc.Param.Type {
			return false
		}
	}
	return true
}

func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParamsFor returns the search parameters of resource type typ, sorted by
// Code; nil for an unknown type. The slice and Params are shared: do not
// modify them.
func ParamsFor(typ string) []*Param { return r4().public[typ] }

// Lookup returns the parameter code of type typ, or nil if there is none.
func Lookup(typ, code string) *Param {
	if d := r4().byCode[typ][code]; d != nil {
		return d.p
	}
	return nil
}

// CompartmentTypes returns the resource types that can be in a compartment
// ("Patient") through at least one search parameter, sorted.
func CompartmentTypes(compartment string) []string { return r4().compType[compartment] }

// CompartmentParams returns the reference parameters that place a resource
// of type typ in a compartment, or nil if it cannot be in it.
func CompartmentParams(compartment, typ string) []*Param { return r4().comp[compartment][typ] }
