package fhirtest

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// srTestAliases checks the parameters a store answers from other
// parameters' values (search.Param.Alias: combo-code is code |
// component-code, patient is subject restricted to Patient), end to end:
// resources written through write.Writer (so package search extracts
// them, and writes nothing for the aliases) and queries parsed from URLs.
func srTestAliases(t *testing.T, open StoreOpener) {
	s := open(t)
	ctx := t.Context()
	docs := map[string]string{
		"Patient/p1": `{"resourceType":"Patient","name":[{"family":"Alpha"}]}`,
		"Patient/p2": `{"resourceType":"Patient","name":[{"family":"Beta"}]}`,
		"Group/g1":   `{"resourceType":"Group","type":"person","actual":true}`,
		// A blood pressure panel: its codes and values are in components.
		"Observation/o1": `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"},
			"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
			"component":[
				{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
				{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
		"Observation/o2": `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p2"},
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"/min"}}`,
		"Observation/o3": `{"resourceType":"Observation","status":"final","subject":{"reference":"Group/g1"},
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":65,"system":"http://unitsofmeasure.org","code":"/min"}}`,
	}
	err := s.Update(ctx, func(tx fhir.Tx) error {
		for key, doc := range docs {
			typ, id, _ := strings.Cut(key, "/")
			res, err := fhir.ParseJSON([]byte(doc), fhir.Limits{})
			if err != nil {
				return err
			}
			if _, err := (write.Writer{}).Put(ctx, tx, fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}, fhir.Version{}, res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srch := srAs(t, s)
	cases := []struct {
		typ, query        string
		matches, included []string // Type/id, sorted
	}{
		{"Observation", "combo-code=http://loinc.org|8480-6", []string{"Observation/o1"}, nil},
		{"Observation", "combo-code=85354-9", []string{"Observation/o1"}, nil},
		{"Observation", "combo-code=8867-4", []string{"Observation/o2", "Observation/o3"}, nil},
		{"Observation", "combo-code:missing=false", []string{"Observation/o1", "Observation/o2", "Observation/o3"}, nil},
		{"Observation", "combo-value-quantity=120", []string{"Observation/o1"}, nil},
		{"Observation", "combo-value-quantity=gt66", []string{"Observation/o1", "Observation/o2"}, nil},
		// Components pair up: 8480-6 is 120, not 80.
		{"Observation", "combo-code-value-quantity=http://loinc.org|8480-6$120", []string{"Observation/o1"}, nil},
		{"Observation", "combo-code-value-quantity=http://loinc.org|8480-6$80", nil, nil},
		{"Observation", "combo-code-value-quantity=8867-4$lt68", []string{"Observation/o3"}, nil},
		{"Observation", "patient=p1", []string{"Observation/o1"}, nil},
		{"Observation", "patient=Patient/p2", []string{"Observation/o2"}, nil},
		{"Observation", "patient=g1", nil, nil},
		{"Observation", "subject=Group/g1", []string{"Observation/o3"}, nil},
		{"Observation", "patient:missing=true", []string{"Observation/o3"}, nil},
		{"Observation", "patient:missing=false", []string{"Observation/o1", "Observation/o2"}, nil},
		{"Observation", "patient.family=alpha", []string{"Observation/o1"}, nil},
		{"Observation", "code=8867-4&_include=Observation:patient", []string{"Observation/o2", "Observation/o3"}, []string{"Patient/p2"}},
		{"Patient", "_id=p1&_revinclude=Observation:patient", []string{"Patient/p1"}, []string{"Observation/o1"}},
		{"Patient", "_has:Observation:patient:combo-code=8462-4", []string{"Patient/p1"}, nil},
		{"Patient", "_has:Observation:patient:code=8867-4", []string{"Patient/p2"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.typ+"?"+tc.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := search.ParseQuery(tc.typ, vals, "", true)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			res, err := srch.Search(ctx, fhir.DefaultTenant, q, nil)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if got := srKeys(res.Matches); !slices.Equal(got, nonNilKeys(tc.matches)) {
				t.Errorf("matches %v, want %v", got, tc.matches)
			}
			if got := srKeys(res.Included); !slices.Equal(got, nonNilKeys(tc.included)) {
				t.Errorf("included %v, want %v", got, tc.included)
			}
		})
	}
	t.Run("SortOnAlias", func(t *testing.T) {
		q, err := search.ParseQuery("Observation", url.Values{"_sort": {"combo-value-quantity"}}, "", true)
		if err != nil {
			t.Fatal(err)
		}
		// Ascending by each one's smallest value: 65, 70, then o1's 80.
		srExpect(t, srch, q, []string{"o3", "o2", "o1"})
	})
}

func nonNilKeys(ks []string) []string {
	if ks == nil {
		return []string{}
	}
	return ks
}
