// Command paramgen reads the official FHIR R4 definitions (the
// hl7.fhir.r4.core package, one JSON file per artifact) and writes the
// compact table package search embeds:
//
//   - per resource type, the search parameters that apply to it, with the
//     FHIRPath expression reduced to the union parts for that type (the
//     official expressions of shared parameters such as clinical-code list
//     every base type in one union);
//   - the element types of every base type, so the evaluator knows the FHIR
//     type of each node it reaches (a choice's type from its suffix, a
//     backbone's children) without the validator's tables, which are
//     private to package fhir;
//   - the compartment definitions: compartment -> type -> parameters.
//
// Run through go generate in package search; builds never read the core
// folder.
package main

import (
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The output format, mirrored by fhir/search/registry.go.
type table struct {
	Types []typeParams          `json:"types"`
	Elems []typeElems           `json:"elems"`
	Comp  map[string][]compType `json:"comp"`
}

type typeParams struct {
	Name   string     `json:"n"`
	Params []paramOut `json:"p"`
}

type paramOut struct {
	Code    string    `json:"c"`
	URL     string    `json:"u"`
	Type    string    `json:"t"`
	Expr    string    `json:"x"`
	Targets []string  `json:"to,omitempty"`
	Comps   []compOut `json:"cp,omitempty"`
}

type compOut struct {
	URL  string `json:"u"`
	Expr string `json:"x"`
}

type typeElems struct {
	Name  string    `json:"n"`
	Base  string    `json:"b,omitempty"`
	Kind  string    `json:"k"` // p(rimitive), c(omplex), r(esource)
	Elems []elemOut `json:"e,omitempty"`
}

type elemOut struct {
	Path   string   `json:"p"`           // relative: "component.code"; choices without [x]
	Types  []string `json:"t,omitempty"` // type codes; empty with Ref
	Choice bool     `json:"c,omitempty"`
	Ref    string   `json:"r,omitempty"` // contentReference, relative to the type
	Inline bool     `json:"i,omitempty"` // children are defined inline (backbone)
}

type compType struct {
	Type   string   `json:"t"`
	Params []string `json:"p"`
}

// Input shapes: only the fields read.
type searchParameter struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	Code       string   `json:"code"`
	Base       []string `json:"base"`
	Type       string   `json:"type"`
	Expression string   `json:"expression"`
	Target     []string `json:"target"`
	Component  []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

type structureDefinition struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []struct {
			Path             string `json:"path"`
			ContentReference string `json:"contentReference"`
			Type             []struct {
				Code      string `json:"code"`
				Extension []struct {
					URL      string `json:"url"`
					ValueURL string `json:"valueUrl"`
				} `json:"extension"`
			} `json:"type"`
		} `json:"element"`
	} `json:"snapshot"`
}

type compartmentDefinition struct {
	ID       string `json:"id"`
	Code     string `json:"code"`
	Resource []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

// unsupported are the Resource-level parameters kapbridge does not
// implement (full-text, named queries, lists, _filter); leaving them out
// of the table keeps them out of the CapabilityStatement too.
var unsupported = map[string]bool{"_query": true, "_content": true, "_text": true, "_list": true, "_filter": true}

// skipIDs are definitions the evaluator cannot index meaningfully:
// Bundle composition/message point at an embedded resource, not a
// Reference.
var skipIDs = map[string]bool{"Bundle-composition": true, "Bundle-message": true}

func main() {
	core := flag.String("core", "", "folder of the hl7.fhir.r4.core package")
	out := flag.String("out", "", "output file (.json.gz)")
	flag.Parse()
	if *core == "" || *out == "" {
		log.Fatal("usage: paramgen -core DIR -out FILE")
	}
	t, err := build(*core)
	if err != nil {
		log.Fatal(err)
	}
	if err := write(*out, t); err != nil {
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

func build(core string) (*table, error) {
	t := &table{Comp: map[string][]compType{}}

	// Types first: the parameters need the list of resource types.
	sdFiles, err := filepath.Glob(filepath.Join(core, "StructureDefinition-*.json"))
	if err != nil {
		return nil, err
	}
	var resources []string
	for _, f := range sdFiles {
		var sd structureDefinition
		if err := readJSON(f, &sd); err != nil {
			return nil, err
		}
		te, ok := typeOf(&sd)
		if !ok {
			continue
		}
		if te.Kind == "r" && !sd.Abstract {
			resources = append(resources, te.Name)
		}
		t.Elems = append(t.Elems, te)
	}
	sort.Slice(t.Elems, func(i, j int) bool { return t.Elems[i].Name < t.Elems[j].Name })
	sort.Strings(resources)

	spFiles, err := filepath.Glob(filepath.Join(core, "SearchParameter-*.json"))
	if err != nil {
		return nil, err
	}
	var sps []*searchParameter
	byURL := map[string]*searchParameter{}
	for _, f := range spFiles {
		sp := new(searchParameter)
		if err := readJSON(f, sp); err != nil {
			return nil, err
		}
		byURL[sp.URL] = sp
		// The package ships example definitions (a second Condition.subject
		// and _id); they are not part of the standard set.
		if strings.HasPrefix(sp.ID, "example") || skipIDs[sp.ID] || sp.Type == "special" ||
			sp.Expression == "" || unsupported[sp.Code] {
			continue
		}
		sps = append(sps, sp)
	}
	sort.Slice(sps, func(i, j int) bool { return sps[i].URL < sps[j].URL })

	for _, rt := range resources {
		tp := typeParams{Name: rt}
		seen := map[string]string{}
		for _, sp := range sps {
			if !appliesTo(sp, rt) {
				continue
			}
			expr := reduce(sp.Expression, rt)
			if expr == "" {
				continue
			}
			if prev, dup := seen[sp.Code]; dup {
				return nil, fmt.Errorf("%s: code %q defined by %s and %s", rt, sp.Code, prev, sp.URL)
			}
			seen[sp.Code] = sp.URL
			po := paramOut{Code: sp.Code, URL: sp.URL, Type: sp.Type, Expr: expr, Targets: narrowTargets(expr, sp.Target)}
			for _, c := range sp.Component {
				def := byURL[c.Definition]
				if def == nil {
					return nil, fmt.Errorf("%s: component %s not found", sp.URL, c.Definition)
				}
				po.Comps = append(po.Comps, compOut{URL: c.Definition, Expr: c.Expression})
			}
			tp.Params = append(tp.Params, po)
		}
		sort.Slice(tp.Params, func(i, j int) bool { return tp.Params[i].Code < tp.Params[j].Code })
		t.Types = append(t.Types, tp)
	}
	// A composite's components must be parameters of the same type, so the
	// runtime can link them by URL.
	for _, tp := range t.Types {
		have := map[string]bool{}
		for _, p := range tp.Params {
			have[p.URL] = true
		}
		for _, p := range tp.Params {
			for _, c := range p.Comps {
				if !have[c.URL] {
					return nil, fmt.Errorf("%s %s: component %s does not apply to the type", tp.Name, p.Code, c.URL)
				}
			}
		}
	}

	cdFiles, err := filepath.Glob(filepath.Join(core, "CompartmentDefinition-*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range cdFiles {
		var cd compartmentDefinition
		if err := readJSON(f, &cd); err != nil {
			return nil, err
		}
		if cd.ID == "example" {
			continue
		}
		var cts []compType
		for _, r := range cd.Resource {
			var ps []string
			for _, p := range r.Param {
				// {def}: membership by the resource's own definition
				// (e.g. a Patient is in its own compartment), not a
				// search parameter.
				if p == "{def}" {
					continue
				}
				ps = append(ps, p)
			}
			if len(ps) > 0 {
				cts = append(cts, compType{Type: r.Code, Params: ps})
			}
		}
		sort.Slice(cts, func(i, j int) bool { return cts[i].Type < cts[j].Type })
		t.Comp[cd.Code] = cts
	}
	return t, nil
}

var resolveIs = regexp.MustCompile(`resolve\(\) is ([A-Za-z]+)`)

// narrowTargets returns the target types the expression for one resource
// type can reach: clinical-patient lists Patient and Group for all its
// bases, but on Observation it is subject.where(resolve() is Patient).
func narrowTargets(expr string, targets []string) []string {
	only := map[string]bool{}
	for _, part := range splitUnion(expr) {
		m := resolveIs.FindAllStringSubmatch(part, -1)
		if len(m) == 0 {
			return targets
		}
		for _, x := range m {
			only[x[1]] = true
		}
	}
	var out []string
	for _, t := range targets {
		if only[t] {
			out = append(out, t)
		}
	}
	return out
}

func appliesTo(sp *searchParameter, rt string) bool {
	for _, b := range sp.Base {
		if b == rt || b == "Resource" || b == "DomainResource" {
			return true
		}
	}
	return false
}

// reduce keeps the top-level union parts of expr that start at type rt (or
// at Resource / DomainResource) and joins them again.
func reduce(expr, rt string) string {
	var keep []string
	for _, part := range splitUnion(expr) {
		part = strings.TrimSpace(part)
		head := strings.TrimLeft(part, "( ")
		end := strings.IndexFunc(head, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		})
		if end < 0 {
			end = len(head)
		}
		switch head[:end] {
		case rt, "Resource", "DomainResource":
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, " | ")
}

// splitUnion splits at '|' outside parentheses and string literals.
func splitUnion(expr string) []string {
	var parts []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, expr[start:i])
			start = i + 1
		}
	}
	return append(parts, expr[start:])
}

const fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

// typeOf converts one StructureDefinition; ok is false for the ones the
// evaluator does not need (extensions, logical models, resource profiles).
func typeOf(sd *structureDefinition) (typeElems, bool) {
	base := sd.BaseDefinition[strings.LastIndex(sd.BaseDefinition, "/")+1:]
	te := typeElems{Name: sd.Type, Base: base}
	switch sd.Kind {
	case "primitive-type":
		te.Kind = "p"
	case "complex-type":
		te.Kind = "c"
	case "resource":
		te.Kind = "r"
	default:
		return te, false
	}
	if sd.Derivation == "constraint" {
		// Profiles of data types that appear as type codes (SimpleQuantity,
		// MoneyQuantity) share their base's elements; extensions and
		// resource profiles are not types of their own.
		if sd.Type == "Extension" || sd.Kind == "resource" {
			return te, false
		}
		te.Name = sd.Name
		return te, true
	}
	if sd.BaseDefinition == "" {
		te.Base = ""
	}
	if te.Kind == "p" {
		// A primitive's only element is its System-typed value.
		return te, true
	}
	els := sd.Snapshot.Element
	hasChildren := map[string]bool{}
	for _, e := range els {
		if i := strings.LastIndex(e.Path, "."); i > 0 {
			hasChildren[e.Path[:i]] = true
		}
	}
	for _, e := range els[1:] {
		rel := strings.TrimPrefix(e.Path, sd.Type+".")
		eo := elemOut{Path: rel}
		if strings.HasSuffix(rel, "[x]") {
			eo.Path = strings.TrimSuffix(rel, "[x]")
			eo.Choice = true
		}
		if e.ContentReference != "" {
			eo.Ref = strings.TrimPrefix(strings.TrimPrefix(e.ContentReference, "#"), sd.Type+".")
		}
		for _, ty := range e.Type {
			code := ty.Code
			if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
				code = ""
				for _, x := range ty.Extension {
					if x.URL == fhirTypeExt {
						code = x.ValueURL
					}
				}
				if code == "" {
					continue
				}
			}
			eo.Types = append(eo.Types, code)
		}
		if len(eo.Types) == 0 && eo.Ref == "" {
			continue
		}
		eo.Inline = hasChildren[e.Path] && eo.Ref == ""
		te.Elems = append(te.Elems, eo)
	}
	return te, true
}

func write(path string, t *table) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(zw)
	if err := enc.Encode(t); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
