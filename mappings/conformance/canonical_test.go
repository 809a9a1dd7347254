package conformance_test

import (
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/conformance"
)

// The artifacts are published at exactly the URLs the mappings write.
func TestCanonicalURLsMatchMappings(t *testing.T) {
	if conformance.Base != mappings.CanonicalBase {
		t.Fatalf("Base %s, mappings.CanonicalBase %s", conformance.Base, mappings.CanonicalBase)
	}
	for _, u := range []string{mappings.CSSessionType, mappings.CSClearanceOutcome, mappings.CSClearanceItem, mappings.CSRedFlag,
		mappings.CSSideEffect, mappings.CSInstrument, mappings.CSCondition, mappings.CSObservation, mappings.CSCarePlanCategory} {
		a, ok := conformance.Lookup(u)
		if !ok || a.ResourceType != "CodeSystem" {
			t.Errorf("no CodeSystem at %s", u)
		}
	}
}
