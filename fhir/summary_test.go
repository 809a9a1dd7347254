package fhir

import "testing"

func TestSummaryElements(t *testing.T) {
	for _, tc := range []struct {
		typ, name string
		summary   bool
	}{
		{"Patient", "id", true},
		{"Patient", "meta", true},
		{"Patient", "name", true},
		{"Patient", "birthDate", true},
		{"Patient", "photo", false},
		{"Patient", "contact", false},
		{"Observation", "valueQuantity", true},
		{"Observation", "code", true},
		{"Observation", "note", false},
		{"Observation", "text", false},
	} {
		if got := IsSummaryElement(tc.typ, tc.name); got != tc.summary {
			t.Errorf("IsSummaryElement(%s, %s) = %v, want %v", tc.typ, tc.name, got, tc.summary)
		}
	}
	if !IsRequiredElement("Observation", "status") || !IsRequiredElement("Observation", "code") || IsRequiredElement("Observation", "subject") {
		t.Error("IsRequiredElement wrong for Observation status/code/subject")
	}
}
