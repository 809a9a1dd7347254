package search

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// FuzzParseQuery: any query string on any type gives a Query or a 400
// *fhir.Error, never a panic, and a Query within its documented bounds.
func FuzzParseQuery(f *testing.F) {
	seeds := []struct{ typ, q string }{
		{"Observation", "code=http://loinc.org|8480-6&subject=Patient/1"},
		{"Observation", `code=a\,b,c\|d&code:text=x&code:not=y`},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"},
		{"Patient", "family=M%C3%BCller&given:exact=Jo&name:contains=ann&birthdate=ge1974-12"},
		{"Observation", "date=ge2024-03-01T10:00:00%2B02:00&date=lt2024&date=sa2024-03-01T10:00+02:00"},
		{"Observation", "value-quantity=gt5.4|http://unitsofmeasure.org|mg&value-quantity=le100||mm[Hg]&value-quantity=ap1e2"},
		{"Observation", "subject:Patient.identifier=urn:mrn|7&patient.name=Rivera&subject:identifier=a|b"},
		{"Patient", "_has:Observation:patient:code=1234-5&_has:Observation:patient:_has:x:y:z=1"},
		{"Observation", "code-value-quantity=http://loinc.org|8480-6$gt100,http://loinc.org|8462-4$lt90||mm[Hg]"},
		{"Observation", "code:missing=true&_count=10&_sort=-date,_id&_include=Observation:subject:Patient&_revinclude:iterate=Provenance:target"},
		{"Patient", "_summary=count&_elements=name,gender&_total=accurate&_include=*&_revinclude=*"},
		{"ValueSet", "url:below=http://hl7.org/fhir/ValueSet/&version=1"},
		{"RiskAssessment", "probability=0.80&probability=gt1e-3"},
		{"Patient", "foo=bar&name:sounds=x&_filter=name eq x&_count=-1"},
		{"Nonesuch", "a=b"},
		// U+0000 and the limits (TestQueryNUL, TestQueryLimits).
		{"Patient", "name=a%00b&identifier=urn:x|%00"},
		{"Patient", "na%00me=x&_sort=birth%00date"},
		{"Patient", repeat(DefaultLimits.MaxParams+1, "name=a%d", "&")},
		{"Patient", "name=" + repeat(DefaultLimits.MaxValues+1, "a%d", ",")},
		{"Patient", repeat(4, "name="+repeat(DefaultLimits.MaxValues, "a%d", ","), "&")},
		{"Observation", "_sort=" + repeat(DefaultLimits.MaxSortKeys+1, "date", ",")},
		{"Observation", repeat(40, "_include=Observation:subject", "&") + "&_include:iterate=Observation:subject&_revinclude=Provenance:target"},
		{"Patient", repeat(DefaultLimits.MaxChains+1, "_has:Observation:patient:code=%d", "&")},
	}
	for _, s := range seeds {
		f.Add(s.typ, s.q, true)
		f.Add(s.typ, s.q, false)
	}
	lim := DefaultLimits
	f.Fuzz(func(t *testing.T, typ, query string, strict bool) {
		vals, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		q, err := ParseQuery(typ, vals, testBase, strict)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || fhir.StatusOf(err) != 400 || len(fe.Issues) == 0 {
				t.Fatalf("error %v is not a 400 *fhir.Error", err)
			}
			return
		}
		if q.Count < 0 || q.Count > MaxCount {
			t.Fatalf("count %d", q.Count)
		}
		values, chains := 0, 0
		for _, c := range q.Clauses {
			for _, in := range []*Clause{&c, chainedClause(c)} {
				if in != nil && len(in.Values) > lim.MaxValues {
					t.Fatalf("%d values in one criterion", len(in.Values))
				}
			}
			if cc := chainedClause(c); cc != nil {
				chains++
				values += len(cc.Values)
			} else {
				values += len(c.Values)
			}
			for _, v := range c.Values {
				if strings.IndexByte(v.Code+v.System+v.Text+v.Exact+v.RefID, 0) >= 0 {
					t.Fatalf("a value holds U+0000: %+v", v)
				}
			}
		}
		if len(q.Clauses) > lim.MaxParams || values > lim.MaxTotalValues || chains > lim.MaxChains ||
			len(q.Sort) > lim.MaxSortKeys || len(q.Include)+len(q.RevInclude) > lim.MaxIncludes {
			t.Fatalf("over the limits: %d criteria, %d values, %d chains, %d sort keys, %d includes",
				len(q.Clauses), values, chains, len(q.Sort), len(q.Include)+len(q.RevInclude))
		}
		if strict && len(q.Ignored) > 0 {
			t.Fatalf("strict query ignored %v", q.Ignored)
		}
		for _, c := range q.Clauses {
			if c.Param == nil && c.Has == nil {
				t.Fatalf("clause without parameter: %+v", c)
			}
		}
	})
}

// chainedClause is the inner criterion of a chained or _has one, else nil.
func chainedClause(c Clause) *Clause {
	switch {
	case c.Chain != nil:
		return &c.Chain.Clause
	case c.Has != nil:
		return &c.Has.Clause
	}
	return nil
}

// FuzzExtract: any JSON document that parses can be indexed without a
// panic, and every entry names its parameter and type.
func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(examples, "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// Large Bundles slow every execution; the small examples cover
		// the shapes.
		if len(b) < 16<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := fhir.ParseJSON(data, fhir.DefaultLimits)
		if err != nil {
			return
		}
		for _, e := range Extract(v, testBase) {
			if e.Param == "" || e.Type == "" {
				t.Fatalf("unnamed entry %+v", e)
			}
		}
	})
}
