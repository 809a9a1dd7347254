package fhirpath

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/internal/shared"
)

// TestR4Invariants compiles every invariant (constraint expression) of
// the R4 core definitions and of US Core 3.1.0, and evaluates the core
// ones (each resource's own, each data type's on every element of that
// type, and ele-1 on every element) on the official examples in
// testdata/fhir-r4-examples: an invariant must compile, and hold or be
// not supported (the examples are valid R4).
// invalidInSource are published invariants that are not FHIRPath.
var invalidInSource = map[string]string{
	// US Core 3.1.0 writes "resolve().is Practitioner": "is" after a dot
	// is a function name, which needs parentheses.
	"provenance-1": "US Core 3.1.0 writes .is Practitioner without parentheses",
}

func TestR4Invariants(t *testing.T) {
	shared := shared.Dir(t, "fhir-r4")
	files, _ := filepath.Glob(filepath.Join(shared, "core", "StructureDefinition-*.json"))
	if len(files) == 0 {
		t.Fatalf("no R4 definitions in %s/core", shared)
	}
	profiles, _ := filepath.Glob(filepath.Join(shared, "us-core-3.1.0", "StructureDefinition-*.json"))
	type invariant struct{ key, src string }
	var checks []invariant
	byType := map[string][]invariant{}
	compiled := 0
	for _, f := range append(files, profiles...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sd struct {
			Kind, Derivation, Type string
			Snapshot               struct {
				Element []struct {
					Path       string
					Constraint []struct{ Key, Expression, Source string }
				}
			}
		}
		if err := json.Unmarshal(raw, &sd); err != nil {
			t.Fatal(err)
		}
		for _, el := range sd.Snapshot.Element {
			for _, c := range el.Constraint {
				if c.Expression == "" {
					continue
				}
				if _, err := Compile(c.Expression); err != nil {
					if why, ok := invalidInSource[c.Key]; ok {
						t.Logf("%s %s: refused as expected (%s): %v", filepath.Base(f), c.Key, why, err)
						continue
					}
					t.Errorf("%s %s %s: %v\n\t%s", filepath.Base(f), el.Path, c.Key, err, c.Expression)
					continue
				}
				compiled++
				if sd.Derivation == "constraint" || !(c.Source == "" || strings.HasSuffix(c.Source, "/"+sd.Type)) {
					continue // a profile's, or inherited: checked where defined
				}
				// The invariant on every element it constrains, with that
				// element as $this; it fails only where it is false (empty
				// passes, as FHIR reads invariants).
				holds := ".select(" + c.Expression + ").where($this = false).empty()"
				switch {
				case sd.Kind == "resource":
					byType[sd.Type] = append(byType[sd.Type], invariant{c.Key, strings.ReplaceAll(el.Path, "[x]", "") + holds})
				case sd.Kind == "complex-type" && el.Path == sd.Type && sd.Type != "Element":
					// a data type's own invariants, wherever it occurs
					checks = append(checks, invariant{c.Key, "descendants().ofType(" + sd.Type + ")" + holds})
				case sd.Type == "Element" && c.Key == "ele-1":
					checks = append(checks, invariant{c.Key, "descendants()" + holds})
				}
			}
		}
	}
	examples, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "fhir-r4-examples", "*.json"))
	evaluated, held, unsupported := 0, 0, 0
	var failures []string
	for _, f := range examples {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := fhir.ParseJSON(raw, fhir.Limits{})
		if err != nil {
			continue
		}
		for _, inv := range append(byType[res.GetString("resourceType")], checks...) {
			ok, err := MustCompile(inv.src).Predicate(res, nil)
			evaluated++
			switch {
			case errors.Is(err, ErrNotSupported):
				unsupported++
			case err != nil:
				failures = append(failures, filepath.Base(f)+" "+inv.key+": "+err.Error())
			case !ok:
				failures = append(failures, filepath.Base(f)+" "+inv.key+": false: "+inv.src)
			default:
				held++
			}
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d invariants compiled (R4 core and US Core 3.1.0); on %d examples, %d evaluations: %d true, %d not supported, %d failed",
		compiled, len(examples), evaluated, held, unsupported, len(failures))
}

// TestNeedsMember: each invariant skipped for lack of a member holds on
// every resource type without that member, as the engine evaluates it,
// and fails on one with it where it should (dom-3: an unreferenced
// contained resource).
func TestNeedsMember(t *testing.T) {
	for key, member := range needsMember {
		checked := 0
		for _, typ := range fhir.ResourceTypes() {
			for _, c := range fhir.TypeConstraints(typ) {
				if c.Key != key {
					continue
				}
				checked++
				if !strings.HasPrefix(c.Expression, member+".") {
					t.Errorf("%s on %s: %q does not start at %s", key, typ, c.Expression, member)
				}
				res, err := fhir.ParseJSON([]byte(`{"resourceType":"`+typ+`","id":"x"}`), fhir.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				inv := compileInvariant(c)
				ok, err := inv.expr.Predicate(res, nil)
				if err != nil || !ok {
					t.Errorf("%s on a %s without %s: %v %v", key, typ, member, ok, err)
				}
			}
		}
		if checked == 0 {
			t.Errorf("%s: on no resource type", key)
		}
	}
	res, _ := fhir.ParseJSON([]byte(`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"o"}]}`), fhir.Limits{})
	if issues := CheckInvariants(res, fhir.SeverityError); len(issues) != 1 || !strings.HasPrefix(issues[0].Diagnostics, "dom-3:") {
		t.Errorf("an unreferenced contained resource: %v", issues)
	}
}
