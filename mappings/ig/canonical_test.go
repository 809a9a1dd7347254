package ig_test

import (
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
		mappings.CSSideEffect, mappings.CSInstrument, mappings.CSCondition, mappings.CSObservation, mappings.CSCarePlanCategory} {
		a, ok := ig.Lookup(u)
		if !ok || a.ResourceType != "CodeSystem" {
			t.Errorf("no CodeSystem at %s", u)
		}
	}
}
