package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/kapbridge/kapbridge/fhir/internal/names"
)

// r4spec.json.gz is written by internal/specgen (see generate.go) from the
// official R4 core package.
//
//go:embed r4spec.json.gz
var r4specGz []byte

// The embedded table's shape; internal/specgen writes it.
type specFile struct {
	Types []struct {
		Name     string `json:"n"`
		Kind     string `json:"k"`
		Abstract bool   `json:"a"`
		Regex    string `json:"re"`
		Elems    []struct {
			Path  string `json:"p"`
			Min   int    `json:"min"`
			Max   int    `json:"max"`
			Types []struct {
				Code    string   `json:"c"`
				Targets []string `json:"to"`
			} `json:"t"`
			Ref    string       `json:"r"`
			Inline bool         `json:"b"`
			VS     int          `json:"vs"`
			Sum    bool         `json:"s"`
			Inv    []Constraint `json:"i"`
		} `json:"e"`
		Inv []Constraint `json:"i"`
	} `json:"types"`
	ValueSets [][]string `json:"valueSets"`
	B64Names  []string   `json:"b64"`
}

type typeKind uint8

const (
	kindPrimitive typeKind = iota
	kindComplex
	kindResource
)

// typeDef is one R4 base type: a primitive with its format, or a complex
// type or resource with its element tree.
type typeDef struct {
	name     string
	kind     typeKind
	abstract bool
	json     Kind              // the JSON kind a primitive's value takes
	re       *regexp.Regexp    // nil: no format beyond the JSON kind
	fast     func(string) bool // same answer as re, faster (primitive.go)
	node     *node             // complex types and resources
	// inv are the invariants of the type wherever it occurs.
	inv []Constraint
	// summary holds the JSON names of the top-level isSummary elements
	// (choices expanded), for _summary=true.
	summary map[string]bool
}

// node is one object level of a type: the root of a type, or a backbone
// element defined inline.
type node struct {
	elems     map[string]*elemDef // by JSON member name; choices expanded
	required  []requirement
	extension bool // Extension: either extensions or a value (ext-1)
	// byName is elems again, for the validator's lookup of every member
	// it checks (names.Index: cheaper than the map's hash).
	byName names.Index[*elemDef]
}

// elem is elems[name].
func (n *node) elem(name string) *elemDef {
	ed, _ := n.byName.Get(name)
	return ed
}

// indexNodes builds byName of every node of the tables, once they are
// complete.
func indexNodes(s *specTables) {
	seen := map[*node]bool{}
	var index func(n *node)
	index = func(n *node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		keys := make([]string, 0, len(n.elems))
		vals := make([]*elemDef, 0, len(n.elems))
		for k, ed := range n.elems {
			keys, vals = append(keys, k), append(vals, ed)
		}
		n.byName = names.New(keys, vals)
		for _, ed := range vals {
			index(ed.node)
		}
	}
	for _, td := range s.types {
		index(td.node)
	}
}

type requirement struct {
	name  string   // as written in the definitions: "code", "value[x]"
	names []string // JSON names that satisfy it
}

// elemDef is one JSON member of a node.
type elemDef struct {
	name     string
	uname    string // "_" + name, for primitive extensions
	choice   string // base name of a choice element ("value"), else ""
	min, max int    // max -1 is unbounded
	typ      *typeDef
	code     string   // the type code as defined: "BackboneElement" for inline nodes
	node     *node    // children: an inline backbone, a content reference or typ.node
	targets  []string // Reference targets; nil means any resource
	codes    map[string]struct{}
	inv      []Constraint // invariants of this element (not of its type)
}

type specTables struct {
	types    map[string]*typeDef
	resTypes []string
	b64Names map[string]bool
}

var (
	specOnce sync.Once
	spec     *specTables
)

// r4 returns the loaded tables; loading (a few milliseconds) happens once,
// on first use, so programs that never validate do not pay for it.
func r4() *specTables {
	specOnce.Do(func() {
		s, err := loadSpec(r4specGz)
		if err != nil {
			// The table is generated and embedded: failing to read it is a
			// build defect, not a run-time condition.
			panic("fhir: embedded R4 table: " + err.Error())
		}
		spec = s
	})
	return spec
}

// primitiveJSONKind says which JSON kind each primitive is written as.
func primitiveJSONKind(name string) Kind {
	switch name {
	case "boolean":
		return KindBool
	case "integer", "positiveInt", "unsignedInt", "decimal":
		return KindNumber
	}
	return KindString
}

// compileFHIRRegex compiles a regex from the definitions, anchored over the
// whole value. R4 writes positiveInt's as "+?[1-9][0-9]*", a leading
// quantifier that is meant as a literal plus sign.
func compileFHIRRegex(re string) (*regexp.Regexp, error) {
	if strings.HasPrefix(re, "+") {
		re = `\` + re
	}
	return regexp.Compile(`^(?:` + re + `)$`)
}

func loadSpec(gz []byte) (*specTables, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var f specFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	s := &specTables{types: make(map[string]*typeDef, len(f.Types)), b64Names: map[string]bool{}}
	for _, n := range f.B64Names {
		s.b64Names[n] = true
	}
	sets := make([]map[string]struct{}, len(f.ValueSets))
	for i, list := range f.ValueSets {
		m := make(map[string]struct{}, len(list))
		for _, c := range list {
			m[c] = struct{}{}
		}
		sets[i] = m
	}
	for _, t := range f.Types {
		td := &typeDef{name: t.Name, abstract: t.Abstract, inv: t.Inv}
		switch t.Kind {
		case "primitive-type":
			td.kind = kindPrimitive
			td.json = primitiveJSONKind(t.Name)
			td.fast = fastCheck(t.Name)
			if t.Regex != "" {
				if td.re, err = compileFHIRRegex(t.Regex); err != nil {
					return nil, err
				}
			}
		case "resource":
			td.kind = kindResource
			if !t.Abstract {
				s.resTypes = append(s.resTypes, t.Name)
			}
		default:
			td.kind = kindComplex
		}
		if td.kind != kindPrimitive {
			td.node = &node{elems: map[string]*elemDef{}, extension: t.Name == "Extension"}
		}
		s.types[t.Name] = td
	}
	sort.Strings(s.resTypes)
	// Second pass: element trees, now that every type exists.
	for _, t := range f.Types {
		td := s.types[t.Name]
		if td.node == nil {
			continue
		}
		nodes := map[string]*node{"": td.node}
		type pending struct {
			ed  *elemDef
			ref string
		}
		var refs []pending
		invByPath := map[string][]Constraint{}
		for _, e := range t.Elems {
			if len(e.Inv) > 0 {
				invByPath[e.Path] = e.Inv
			}
			parent, name := "", e.Path
			if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
				parent, name = e.Path[:i], e.Path[i+1:]
			}
			pn := nodes[parent]
			if pn == nil {
				continue // children of an element we do not descend into
			}
			var inline *node
			if e.Inline {
				inline = &node{elems: map[string]*elemDef{}}
				nodes[e.Path] = inline
			}
			base, isChoice := strings.CutSuffix(name, "[x]")
			req := requirement{name: name}
			for _, ty := range e.Types {
				ed := &elemDef{name: name, code: ty.Code, min: e.Min, max: e.Max, node: inline, inv: e.Inv}
				if isChoice {
					ed.choice = base
					ed.name = base + strings.ToUpper(ty.Code[:1]) + ty.Code[1:]
				}
				ed.uname = "_" + ed.name
				if inline == nil {
					ed.typ = s.types[ty.Code]
					if ed.typ == nil {
						continue // not a base type we know; left unchecked
					}
					ed.node = ed.typ.node
				}
				if ty.Code == "Reference" && len(ty.Targets) > 0 {
					ed.targets = ty.Targets
					for _, tg := range ty.Targets {
						if tg == "Resource" {
							ed.targets = nil
							break
						}
					}
				}
				if e.VS > 0 {
					ed.codes = sets[e.VS-1]
				}
				pn.elems[ed.name] = ed
				req.names = append(req.names, ed.name)
			}
			if e.Ref != "" {
				ed := &elemDef{name: name, uname: "_" + name, min: e.Min, max: e.Max}
				pn.elems[name] = ed
				refs = append(refs, pending{ed, e.Ref})
				req.names = append(req.names, name)
			}
			if e.Min > 0 {
				pn.required = append(pn.required, req)
			}
			if e.Sum && parent == "" {
				if td.summary == nil {
					td.summary = map[string]bool{}
				}
				for _, n := range req.names {
					td.summary[n] = true
				}
			}
		}
		for _, p := range refs {
			// A reference to a path we do not know leaves the element's
			// content unchecked rather than refused.
			p.ed.node = nodes[p.ref]
			// Questionnaire.item.item is a Questionnaire.item: its
			// invariants (que-1 ...) too.
			p.ed.inv = invByPath[p.ref]
		}
	}
	indexNodes(s)
	return s, nil
}

// IsResourceType reports whether name is a concrete R4 resource type.
func IsResourceType(name string) bool {
	t := r4().types[name]
	return t != nil && t.kind == kindResource && !t.abstract
}

// ResourceTypes returns every concrete R4 resource type, sorted. The slice
// is the caller's.
func ResourceTypes() []string {
	return append([]string(nil), r4().resTypes...)
}

// IsSummaryElement reports whether the top-level element name (a JSON
// member name, choices expanded, e.g. "valueQuantity") of resource type typ
// is marked isSummary in the R4 definitions, so _summary=true keeps it.
func IsSummaryElement(typ, name string) bool {
	t := r4().types[typ]
	return t != nil && t.summary[name]
}

// IsRequiredElement reports whether the top-level element name of typ has
// a minimum cardinality above zero (kept by _summary=text and _elements).
func IsRequiredElement(typ, name string) bool {
	t := r4().types[typ]
	if t == nil || t.node == nil {
		return false
	}
	for _, r := range t.node.required {
		for _, n := range r.names {
			if n == name {
				return true
			}
		}
	}
	return false
}
