package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The three official examples that break the base definitions, and the
// element each breaks.
var invalidExamples = map[string]string{
	"Questionnaire-qs1.json":           "linkId",
	"Observation-clinical-gender.json": "Observation.performer",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
}

// TestOfficialExamplesRoundTrip posts every official R4 example over HTTP
// and reads it back: equal as decoded JSON apart from id, meta.versionId
// and meta.lastUpdated, on every backend. The three invalid examples are
// refused with the offending element named.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../../testdata/fhir-r4-examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("want the official examples in testdata/fhir-r4-examples, found %d (%v)", len(files), err)
	}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			refused := 0
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				name := filepath.Base(f)
				typ := strings.SplitN(name, "-", 2)[0]
				r := srv.do(http.MethodPost, "/"+typ, body)
				if want, bad := invalidExamples[name]; bad {
					issues := assertOutcome(t, r, http.StatusBadRequest)
					if !mentions(issues, want) {
						t.Errorf("%s: refused, but no issue expression names %q: %s", name, want, r.body)
					}
					refused++
					continue
				}
				if r.status != http.StatusCreated {
					t.Errorf("%s: POST status %d: %.800s", name, r.status, r.body)
					continue
				}
				loc := r.header.Get("Location")
				if !strings.Contains(loc, "/_history/1") {
					t.Errorf("%s: Location %q lacks /_history/1", name, loc)
				}
				id := decode(t, r.body)["id"].(string)
				got := srv.do(http.MethodGet, "/"+typ+"/"+id, nil)
				if got.status != http.StatusOK {
					t.Errorf("%s: GET status %d", name, got.status)
					continue
				}
				if !jsonEqual(withoutServerMeta(decode(t, got.body)), withoutServerMeta(decode(t, body))) {
					t.Errorf("%s: read back differs from what was sent\nsent: %.400s\ngot:  %.400s", name, body, got.body)
				}
			}
			if refused != len(invalidExamples) {
				t.Errorf("refused %d invalid examples, want %d", refused, len(invalidExamples))
			}
		})
	}
}

// mentions reports whether any issue's expression contains want.
func mentions(issues []any, want string) bool {
	for _, is := range issues {
		exprs, _ := is.(map[string]any)["expression"].([]any)
		for _, e := range exprs {
			if s, _ := e.(string); strings.Contains(s, want) {
				return true
			}
		}
	}
	return false
}
