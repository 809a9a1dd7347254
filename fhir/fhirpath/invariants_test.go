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
)

// TestR4Invariants compiles every invariant (constraint expression) of
// the R4 core resource and data type definitions, and evaluates each
// resource's own invariants on the official examples in
// testdata/fhir-r4-examples: an invariant must compile, and evaluate to
// true or to a NotSupported error (the examples are valid R4).
func TestR4Invariants(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "fhir-r4", "core")
	files, _ := filepath.Glob(filepath.Join(dir, "StructureDefinition-*.json"))
	if len(files) == 0 {
		t.Skipf("the R4 definitions are not at %s (they come with ../shared beside the repository)", dir)
	}
	type invariant struct{ key, path, expr string }
	byType := map[string][]invariant{}
	compiled := 0
	for _, f := range files {
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
		if err := json.Unmarshal(raw, &sd); err != nil || sd.Derivation == "constraint" ||
			(sd.Kind != "resource" && sd.Kind != "complex-type") {
			continue
		}
		for _, el := range sd.Snapshot.Element {
			for _, c := range el.Constraint {
				if c.Expression == "" {
					continue
				}
				if _, err := Compile(c.Expression); err != nil {
					t.Errorf("%s %s: %v\n\t%s", el.Path, c.Key, err, c.Expression)
					continue
				}
				compiled++
				// The resource's own invariants; ele-1 and the like, which
				// every element inherits, are left to the data type tests.
				if sd.Kind == "resource" && !strings.HasPrefix(c.Key, "ele-") && !strings.HasPrefix(c.Key, "ext-") &&
					(c.Source == "" || strings.HasSuffix(c.Source, "/"+sd.Type)) {
					byType[sd.Type] = append(byType[sd.Type], invariant{c.Key, strings.ReplaceAll(el.Path, "[x]", ""), c.Expression})
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
		rt := res.GetString("resourceType")
		for _, inv := range byType[rt] {
			// The invariant on every element it constrains, with that
			// element as $this; it fails only where it is false (empty
			// passes, as FHIR reads invariants).
			src := inv.path + ".select(" + inv.expr + ").where($this = false).empty()"
			ok, err := MustCompile(src).Predicate(res, nil)
			evaluated++
			switch {
			case errors.Is(err, ErrNotSupported):
				unsupported++
			case err != nil:
				failures = append(failures, filepath.Base(f)+" "+inv.key+": "+err.Error())
			case !ok:
				failures = append(failures, filepath.Base(f)+" "+inv.key+": false: "+inv.expr)
			default:
				held++
			}
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d invariants compiled; on %d examples, %d evaluations: %d true, %d not supported, %d failed",
		compiled, len(examples), evaluated, held, unsupported, len(failures))
}
