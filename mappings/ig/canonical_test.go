package ig_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// The artifacts are published at exactly the URLs the mappings write.
func TestCanonicalURLsMatchMappings(t *testing.T) {
	if ig.Base != mappings.CanonicalBase {
		t.Fatalf("Base %s, mappings.CanonicalBase %s", ig.Base, mappings.CanonicalBase)
	}
	for _, u := range []string{mappings.CSSessionType, mappings.CSClearanceOutcome, mappings.CSClearanceItem, mappings.CSRedFlag,
		mappings.CSSideEffect, mappings.CSInstrument, mappings.CSCondition, mappings.CSObservation, mappings.CSCarePlanCategory, mappings.CSCheck} {
		a, ok := ig.Lookup(u)
		if !ok || a.ResourceType != "CodeSystem" {
			t.Errorf("no CodeSystem at %s", u)
		}
	}
}

// Every check code is a concept of kap-check, so every finding's Flag
// resolves to its rule.
func TestCheckCodesPublished(t *testing.T) {
	a, ok := ig.Lookup(mappings.CSCheck)
	if !ok {
		t.Fatalf("no CodeSystem at %s", mappings.CSCheck)
	}
	var cs struct {
		Concept []struct{ Code, Definition string } `json:"concept"`
	}
	if err := json.Unmarshal(a.JSON, &cs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs.Concept {
		got = append(got, c.Code)
		if c.Definition == "" {
			t.Errorf("%s has no definition", c.Code)
		}
	}
	if !slices.Equal(got, append(slices.Clone(mappings.CheckCodes), mappings.CodePendingOverdue)) {
		t.Errorf("kap-check codes %v\ndiffer from CheckCodes %v: run go generate ./mappings/ig", got, mappings.CheckCodes)
	}
}
