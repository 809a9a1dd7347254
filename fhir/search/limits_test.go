package search

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// repeat joins n copies of format (with %d the copy's number) with sep.
func repeat(n int, format, sep string) string {
	parts := make([]string, n)
	for i := range parts {
		if strings.Contains(format, "%d") {
			parts[i] = fmt.Sprintf(format, i)
		} else {
			parts[i] = format
		}
	}
	return strings.Join(parts, sep)
}

// TestQueryLimits: a search at each limit parses; one past it is a 400
// naming the limit, its value and the flag that raises it.
func TestQueryLimits(t *testing.T) {
	lim := Limits{MaxParams: 5, MaxValues: 4, MaxTotalValues: 10, MaxSortKeys: 3, MaxIncludes: 2, MaxChains: 2}
	tests := []struct {
		name, typ, at, over, limit string
	}{
		{"criteria", "Patient", repeat(5, "name=a%d", "&"), repeat(6, "name=a%d", "&"), "max-search-params = 5"},
		{"unknown criteria count too", "Patient", repeat(5, "x%d=1", "&"), repeat(6, "x%d=1", "&"), "max-search-params = 5"},
		{"values of one criterion", "Patient", "name=" + repeat(4, "a%d", ","), "name=" + repeat(5, "a%d", ","), "max-search-values = 4"},
		{"values in all", "Patient", "name=a,b,c,d&family=a,b,c,d&given=a,b", "name=a,b,c,d&family=a,b,c,d&given=a,b,c", "max-search-total-values = 10"},
		{"sort keys", "Observation", "_sort=date,-code,status", "_sort=date,-code,status,_id", "max-sort-keys = 3"},
		{"sort keys over several _sort", "Observation", "_sort=date&_sort=code,status", "_sort=date,code&_sort=status,_id", "max-sort-keys = 3"},
		{"includes", "Observation", "_include=Observation:subject&_revinclude=Provenance:target", "_include=Observation:subject&_include=Observation:performer&_revinclude=Provenance:target", "max-includes = 2"},
		{"identical includes count once", "Observation", repeat(50, "_include=Observation:subject", "&") + "&_revinclude=Provenance:target", "_include=Observation:subject&_include:iterate=Observation:subject&_revinclude=Provenance:target", "max-includes = 2"},
		{"chains and _has", "Patient", "general-practitioner:Practitioner.name=x&_has:Observation:patient:code=1", "general-practitioner:Practitioner.name=x&_has:Observation:patient:code=1&_has:Observation:subject:code=2", "max-search-chains = 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := url.ParseQuery(tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lim.ParseQuery(tt.typ, at, testBase, false); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			over, err := url.ParseQuery(tt.over)
			if err != nil {
				t.Fatal(err)
			}
			_, err = lim.ParseQuery(tt.typ, over, testBase, false)
			var fe *fhir.Error
			if !errors.As(err, &fe) || fhir.StatusOf(err) != 400 {
				t.Fatalf("over the limit: want a 400 *fhir.Error, got %v", err)
			}
			flag := "-" + strings.SplitN(tt.limit, " ", 2)[0]
			if d := fe.Issues[0].Diagnostics; !strings.Contains(d, tt.limit) || !strings.Contains(d, flag) {
				t.Errorf("diagnostics %q do not name %s and %s", d, tt.limit, flag)
			}
		})
	}
}

// TestDefaultQueryLimits: zero Limits are DefaultLimits, and the
// package's ParseQuery applies them.
func TestDefaultQueryLimits(t *testing.T) {
	d := DefaultLimits
	for _, tt := range []struct {
		q     string
		limit string
	}{
		{repeat(d.MaxParams+1, "name=a%d", "&"), "max-search-params"},
		{"name=" + repeat(d.MaxValues+1, "a%d", ","), "max-search-values"},
		{repeat(d.MaxTotalValues/d.MaxValues+1, "name="+repeat(d.MaxValues, "a%d", ","), "&"), "max-search-total-values"},
		{"_sort=" + repeat(d.MaxSortKeys+1, "birthdate", ","), "max-sort-keys"},
		{repeat(d.MaxChains+1, "_has:Observation:patient:code=%d", "&"), "max-search-chains"},
	} {
		vals, _ := url.ParseQuery(tt.q)
		for _, parse := range []func() (*Query, error){
			func() (*Query, error) { return ParseQuery("Patient", vals, testBase, false) },
			func() (*Query, error) { return Limits{}.ParseQuery("Patient", vals, testBase, false) },
		} {
			if _, err := parse(); err == nil || !strings.Contains(err.Error(), tt.limit) {
				t.Errorf("%.60s...: want an error naming %s, got %v", tt.q, tt.limit, err)
			}
		}
	}
	// 17 distinct includes: an :iterate one differs from its plain twin.
	vals := url.Values{}
	for _, p := range []string{"general-practitioner", "organization", "link"} {
		vals.Add("_include", "Patient:"+p)
		vals.Add("_include:iterate", "Patient:"+p)
	}
	for _, s := range []string{"Provenance:target", "Observation:subject", "Observation:patient", "Encounter:subject", "Encounter:patient",
		"Condition:subject", "Condition:patient", "AllergyIntolerance:patient", "Immunization:patient", "CarePlan:subject", "CarePlan:patient"} {
		vals.Add("_revinclude", s)
	}
	if _, err := ParseQuery("Patient", vals, testBase, false); err == nil || !strings.Contains(err.Error(), "max-includes = 16") {
		t.Errorf("17 distinct includes: want max-includes, got %v", err)
	}
	vals.Del("_include:iterate")
	if _, err := ParseQuery("Patient", vals, testBase, false); err != nil {
		t.Errorf("14 distinct includes: %v", err)
	}
}

// TestQueryNUL: U+0000 in a parameter name or value is a 400, whatever
// the parameter (criteria, result parameters, unknown ones, lenient or
// strict).
func TestQueryNUL(t *testing.T) {
	for _, q := range []string{"name=a%00b", "identifier=urn:x|a%00", "na%00me=x", "_sort=birth%00date", "_elements=name%00", "foo=%00", "subject:Patient.name=%00"} {
		vals, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, strict := range []bool{false, true} {
			typ := "Patient"
			if strings.HasPrefix(q, "subject") {
				typ = "Observation"
			}
			_, err := ParseQuery(typ, vals, testBase, strict)
			if fhir.StatusOf(err) != 400 || !strings.Contains(err.Error(), "U+0000") {
				t.Errorf("%s (strict %v): want a 400 naming U+0000, got %v", q, strict, err)
			}
		}
	}
}
