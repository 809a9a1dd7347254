// Command specgen reads the official FHIR R4 definitions (the
// hl7.fhir.r4.core package, one JSON file per artifact) and writes the
// compact table the fhir package embeds: for every base type its element
// tree from the snapshot (cardinality, types, reference targets, content
// references) and, for required bindings on code elements, the allowed codes
// when the value set can be enumerated from the core code systems.
//
// Run through go generate in package fhir; builds never read the core folder.
package main

import (
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The output format, mirrored by fhir/spec.go.
type spec struct {
	Types     []typeOut  `json:"types"`
	ValueSets [][]string `json:"valueSets"`
	// B64Names are the JSON member names whose value is a base64Binary
	// somewhere in R4: the parser exempts them from the string limit.
	B64Names []string `json:"b64"`
}

type typeOut struct {
	Name     string    `json:"n"`
	Kind     string    `json:"k"` // primitive-type, complex-type, resource
	Abstract bool      `json:"a,omitempty"`
	Regex    string    `json:"re,omitempty"`
	Elems    []elemOut `json:"e,omitempty"`
	// Inv are the invariants of the type's root: its own and those it
	// inherits from the types it specializes (Age has qty-3 of Quantity,
	// every resource dom-* of DomainResource), ele-1 aside.
	Inv []invOut `json:"i,omitempty"`
}

// invOut is one invariant (ElementDefinition.constraint) with a
// FHIRPath expression.
type invOut struct {
	Key   string `json:"k"`
	Sev   string `json:"s"` // error or warning
	Human string `json:"h"`
	Expr  string `json:"x"`
}

type elemOut struct {
	Path   string    `json:"p"` // relative to the type: "component.code"
	Min    int       `json:"min,omitempty"`
	Max    int       `json:"max"` // -1 for *
	Types  []typeRef `json:"t,omitempty"`
	Ref    string    `json:"r,omitempty"` // contentReference, relative
	Inline bool      `json:"b,omitempty"` // children follow inline (BackboneElement)
	VS     int       `json:"vs,omitempty"`
	// Summary marks isSummary elements (for _summary=true).
	Summary bool `json:"s,omitempty"`
	// Inv are the invariants defined on this element by its own type
	// (obs-7 on Observation), plus those of the constraint profiles its
	// type names (sqty-1 where a SimpleQuantity is asked for). Those of
	// the element's data type are the type's own (typeOut.Inv).
	Inv []invOut `json:"i,omitempty"`
}

type typeRef struct {
	Code    string   `json:"c"`
	Targets []string `json:"to,omitempty"` // resource type names
}

// Input shapes: only the fields we read.
type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	URL          string `json:"url"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	Snapshot     struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsSummary        bool   `json:"isSummary"`
	Type             []struct {
		Extension     []extension `json:"extension"`
		Code          string      `json:"code"`
		Profile       []string    `json:"profile"`
		TargetProfile []string    `json:"targetProfile"`
	} `json:"type"`
	Constraint []constraint `json:"constraint"`
	Binding    *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
}

type constraint struct {
	Key        string `json:"key"`
	Severity   string `json:"severity"`
	Human      string `json:"human"`
	Expression string `json:"expression"`
	Source     string `json:"source"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

type codeSystem struct {
	URL     string    `json:"url"`
	Content string    `json:"content"`
	Concept []concept `json:"concept"`
}

type composePart struct {
	System   string     `json:"system"`
	Concept  []concept  `json:"concept"`
	Filter   []struct{} `json:"filter"`
	ValueSet []string   `json:"valueSet"`
}

type valueSet struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []composePart `json:"include"`
		Exclude []composePart `json:"exclude"`
	} `json:"compose"`
}

const (
	fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	regexExt    = "http://hl7.org/fhir/StructureDefinition/regex"
	sdPrefix    = "http://hl7.org/fhir/StructureDefinition/"
)

func main() {
	core := flag.String("core", "../../shared/fhir-r4/core", "folder of the hl7.fhir.r4.core package")
	out := flag.String("out", "r4spec.json.gz", "output file")
	flag.Parse()
	if err := run(*core, *out); err != nil {
		log.Fatal(err)
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func run(core, out string) error {
	g := &gen{codeSystems: map[string]*codeSystem{}, valueSets: map[string]*valueSet{}, vsIndex: map[string]int{}}
	files, err := filepath.Glob(filepath.Join(core, "CodeSystem-*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		var cs codeSystem
		if err := readJSON(f, &cs); err != nil {
			return err
		}
		g.codeSystems[cs.URL] = &cs
	}
	files, _ = filepath.Glob(filepath.Join(core, "ValueSet-*.json"))
	for _, f := range files {
		var vs valueSet
		if err := readJSON(f, &vs); err != nil {
			return err
		}
		g.valueSets[vs.URL] = &vs
	}
	files, _ = filepath.Glob(filepath.Join(core, "StructureDefinition-*.json"))
	var sds []*structureDefinition
	for _, f := range files {
		sd := new(structureDefinition)
		if err := readJSON(f, sd); err != nil {
			return err
		}
		sds = append(sds, sd)
	}
	// The own root invariants of the core's constraint profiles of data
	// types (SimpleQuantity's sqty-1, MoneyQuantity's mqty-1): elements
	// whose type names such a profile carry them.
	profileInv := map[string][]invOut{}
	for _, sd := range sds {
		if sd.Derivation == "constraint" && sd.Kind == "complex-type" && len(sd.Snapshot.Element) > 0 {
			for _, c := range sd.Snapshot.Element[0].Constraint {
				if c.Source == "" || c.Source == sd.URL {
					profileInv[sd.URL] = append(profileInv[sd.URL], inv(c))
				}
			}
		}
	}
	var s spec
	b64 := map[string]bool{}
	for _, sd := range sds {
		// Base types only: constraint profiles (vitalsigns, SimpleQuantity...)
		// and logical models are not what a plain R4 resource is checked
		// against. Element and Resource have no derivation at all.
		if sd.Derivation == "constraint" || sd.Kind == "logical" {
			continue
		}
		if sd.Derivation == "" && sd.Type != "Element" && sd.Type != "Resource" {
			continue
		}
		t := typeOut{Name: sd.Type, Kind: sd.Kind, Abstract: sd.Abstract}
		if sd.Kind == "primitive-type" {
			for _, e := range sd.Snapshot.Element {
				if e.Path != sd.Type+".value" {
					continue
				}
				for _, ty := range e.Type {
					for _, x := range ty.Extension {
						if x.URL == regexExt {
							t.Regex = x.ValueString
						}
					}
				}
			}
			s.Types = append(s.Types, t)
			continue
		}
		elems := sd.Snapshot.Element
		for i, e := range elems {
			if i == 0 {
				// The type itself: its invariants, ele-1 only on Element
				// (every element's, checked everywhere from there).
				for _, c := range e.Constraint {
					if c.Expression != "" && (sd.Type == "Element" || !strings.HasSuffix(c.Source, "/Element")) {
						t.Inv = append(t.Inv, inv(c))
					}
				}
				continue
			}
			rel := strings.TrimPrefix(e.Path, sd.Type+".")
			eo := elemOut{Path: rel, Min: e.Min, Max: -1}
			if e.Max != "*" {
				fmt.Sscanf(e.Max, "%d", &eo.Max)
			}
			if e.ContentReference != "" {
				eo.Ref = strings.TrimPrefix(strings.TrimPrefix(e.ContentReference, "#"), sd.Type+".")
			}
			// Children of this element follow it in the snapshot.
			if i+1 < len(elems) && strings.HasPrefix(elems[i+1].Path, e.Path+".") {
				eo.Inline = true
			}
			for _, ty := range e.Type {
				code := ty.Code
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = systemType(code, ty.Extension)
				}
				// R4 gives Resource.id the FHIRPath type String, but the
				// specification's prose and every server treat it as an id.
				if sd.Kind == "resource" && rel == "id" {
					code = "id"
				}
				tr := typeRef{Code: code}
				if code == "Reference" {
					for _, p := range ty.TargetProfile {
						tr.Targets = append(tr.Targets, strings.TrimPrefix(p, sdPrefix))
					}
				}
				eo.Types = append(eo.Types, tr)
				if code == "base64Binary" {
					name := rel[strings.LastIndexByte(rel, '.')+1:]
					if strings.HasSuffix(name, "[x]") {
						name = strings.TrimSuffix(name, "[x]") + "Base64Binary"
					}
					b64[name] = true
				}
			}
			if e.Binding != nil && e.Binding.Strength == "required" && len(e.Type) == 1 && eo.Types[0].Code == "code" {
				eo.VS = g.valueSetIndex(e.Binding.ValueSet)
			}
			eo.Min = e.Min
			eo.Summary = e.IsSummary
			for _, c := range e.Constraint {
				// Element's and Extension's own (ele-1, ext-1) are checked
				// where those types are.
				if c.Expression != "" && (c.Source == "" || c.Source == sd.URL) && c.Key != "ele-1" && c.Key != "ext-1" {
					eo.Inv = append(eo.Inv, inv(c))
				}
			}
			for _, ty := range e.Type {
				for _, p := range ty.Profile {
					eo.Inv = append(eo.Inv, profileInv[p]...)
				}
			}
			t.Elems = append(t.Elems, eo)
		}
		s.Types = append(s.Types, t)
	}
	sort.Slice(s.Types, func(i, j int) bool { return s.Types[i].Name < s.Types[j].Name })
	s.ValueSets = g.sets
	for n := range b64 {
		s.B64Names = append(s.B64Names, n)
	}
	sort.Strings(s.B64Names)
	var unchecked []string
	for u := range g.unchecked {
		unchecked = append(unchecked, u)
	}
	sort.Strings(unchecked)
	for _, u := range unchecked {
		log.Printf("required binding left unchecked (not enumerable from core): %s", u)
	}

	b, err := json.Marshal(&s)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func inv(c constraint) invOut {
	return invOut{Key: c.Key, Sev: c.Severity, Human: c.Human, Expr: c.Expression}
}

// systemType maps a FHIRPath system type (used for Element.id,
// Extension.url and primitive values) to the FHIR primitive it stands for.
func systemType(code string, exts []extension) string {
	for _, x := range exts {
		if x.URL == fhirTypeExt && x.ValueURL != "" {
			return x.ValueURL
		}
	}
	switch strings.TrimPrefix(code, "http://hl7.org/fhirpath/System.") {
	case "Boolean":
		return "boolean"
	case "Integer":
		return "integer"
	case "Decimal":
		return "decimal"
	case "Date":
		return "date"
	case "DateTime":
		return "dateTime"
	case "Time":
		return "time"
	}
	return "string"
}

type gen struct {
	codeSystems map[string]*codeSystem
	valueSets   map[string]*valueSet
	vsIndex     map[string]int // canonical -> index+1, 0 = not enumerable
	sets        [][]string
	unchecked   map[string]bool
}

// valueSetIndex returns 1+the index of the expanded code list for the
// value set, or 0 when it cannot be enumerated from the core package
// (external systems such as BCP-13 mime types, BCP-47 languages, UCUM,
// ISO 4217; or intensional filters): those bindings stay unchecked.
func (g *gen) valueSetIndex(canonical string) int {
	url, _, _ := strings.Cut(canonical, "|")
	if i, ok := g.vsIndex[url]; ok {
		return i
	}
	codes, ok := g.expand(url, 0)
	i := 0
	if ok && len(codes) > 0 {
		list := make([]string, 0, len(codes))
		for c := range codes {
			list = append(list, c)
		}
		sort.Strings(list)
		g.sets = append(g.sets, list)
		i = len(g.sets)
	} else {
		if g.unchecked == nil {
			g.unchecked = map[string]bool{}
		}
		g.unchecked[url] = true
	}
	g.vsIndex[url] = i
	return i
}

func (g *gen) expand(url string, depth int) (map[string]bool, bool) {
	url, _, _ = strings.Cut(url, "|")
	vs := g.valueSets[url]
	if vs == nil || vs.Compose == nil || depth > 10 {
		return nil, false
	}
	codes := map[string]bool{}
	for _, inc := range vs.Compose.Include {
		part, ok := g.part(inc, depth)
		if !ok {
			return nil, false
		}
		for c := range part {
			codes[c] = true
		}
	}
	for _, exc := range vs.Compose.Exclude {
		part, ok := g.part(exc, depth)
		if !ok {
			return nil, false
		}
		for c := range part {
			delete(codes, c)
		}
	}
	return codes, true
}

// part expands one include/exclude: the system's concepts (all of them,
// nested ones too, or the listed ones) intersected with each referenced
// value set, as the ValueSet resource defines.
func (g *gen) part(p composePart, depth int) (map[string]bool, bool) {
	if len(p.Filter) > 0 {
		return nil, false
	}
	var set map[string]bool
	if p.System != "" {
		set = map[string]bool{}
		if len(p.Concept) > 0 {
			for _, c := range p.Concept {
				set[c.Code] = true
			}
		} else {
			cs := g.codeSystems[p.System]
			if cs == nil || cs.Content != "complete" {
				return nil, false
			}
			var walk func([]concept)
			walk = func(cs []concept) {
				for _, c := range cs {
					set[c.Code] = true
					walk(c.Concept)
				}
			}
			walk(cs.Concept)
		}
	}
	for _, u := range p.ValueSet {
		sub, ok := g.expand(u, depth+1)
		if !ok {
			return nil, false
		}
		if set == nil {
			set = sub
			continue
		}
		for c := range set {
			if !sub[c] {
				delete(set, c)
			}
		}
	}
	if set == nil {
		return nil, false
	}
	return set, true
}
