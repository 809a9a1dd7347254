package search

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

const testBase = "https://fhir.example.org/r4"

func micros(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

// summary renders the parts of a Query a test compares, compactly.
func summary(q *Query) string {
	var b strings.Builder
	var clause func(c Clause)
	clause = func(c Clause) {
		switch {
		case c.Has != nil:
			b.WriteString("_has:" + c.Has.Type + ":" + c.Has.RefParam.Code + "{")
			clause(c.Has.Clause)
			b.WriteString("}")
			return
		case c.Chain != nil:
			b.WriteString(c.Param.Code + "->" + c.Chain.Type + "{")
			clause(c.Chain.Clause)
			b.WriteString("}")
			return
		}
		b.WriteString(c.Param.Code)
		if c.Modifier != "" {
			b.WriteString(":" + c.Modifier)
		}
		vs, _ := json.Marshal(c.Values)
		b.WriteString("=" + string(vs))
	}
	for i, c := range q.Clauses {
		if i > 0 {
			b.WriteString(" & ")
		}
		clause(c)
	}
	return b.String()
}

func TestParseQueryValues(t *testing.T) {
	tests := []struct {
		typ, query string
		check      func(t *testing.T, q *Query)
	}{
		{"Observation", "code=http://loinc.org|8480-6", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if !v.HasSystem || v.System != "http://loinc.org" || v.Code != "8480-6" {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "code=|8480-6", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if !v.HasSystem || v.System != "" || v.Code != "8480-6" {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "code=http://loinc.org|", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if !v.HasSystem || v.System != "http://loinc.org" || v.Code != "" {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "code=8480-6,8462-4", func(t *testing.T, q *Query) {
			vs := q.Clauses[0].Values
			if len(vs) != 2 || vs[0].HasSystem || vs[0].Code != "8480-6" || vs[1].Code != "8462-4" {
				t.Errorf("%+v", vs)
			}
		}},
		{"Observation", `code=a\,b,c\|d`, func(t *testing.T, q *Query) {
			vs := q.Clauses[0].Values
			if len(vs) != 2 || vs[0].Code != "a,b" || vs[1].Code != "c|d" || vs[1].HasSystem {
				t.Errorf("%+v", vs)
			}
		}},
		{"Observation", "code:not=final", func(t *testing.T, q *Query) {
			if q.Clauses[0].Modifier != "not" || q.Clauses[0].Values[0].Code != "final" {
				t.Errorf("%s", summary(q))
			}
		}},
		{"Observation", "code:text=Blood%20Pr%C3%A9ssure", func(t *testing.T, q *Query) {
			if q.Clauses[0].Values[0].Text != "blood pressure" {
				t.Errorf("%s", summary(q))
			}
		}},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if v.TypeSystem != "http://terminology.hl7.org/CodeSystem/v2-0203" || v.TypeCode != "MR" || v.Code != "12345" {
				t.Errorf("%+v", v)
			}
		}},
		{"Patient", "family=M%C3%BCller&given:exact=Jo&name:contains=ann", func(t *testing.T, q *Query) {
			if len(q.Clauses) != 3 {
				t.Fatalf("%s", summary(q))
			}
			f, g, n := q.Clauses[0], q.Clauses[1], q.Clauses[2]
			if f.Values[0].Text != "muller" || f.Values[0].Exact != "Müller" {
				t.Errorf("family %+v", f.Values[0])
			}
			if g.Modifier != "exact" || g.Values[0].Exact != "Jo" || n.Modifier != "contains" {
				t.Errorf("%s", summary(q))
			}
		}},
		{"Patient", "birthdate=1974-12", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if v.Prefix != PrefixNone || v.Lo != micros("1974-12-01T00:00:00Z") || v.Hi != micros("1974-12-31T23:59:59.999999Z") {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "date=ge2024-03-01T10:00:00%2B02:00&date=lt2024", func(t *testing.T, q *Query) {
			a, b := q.Clauses[0].Values[0], q.Clauses[1].Values[0]
			if a.Prefix != GE || a.Lo != micros("2024-03-01T08:00:00Z") || a.Hi != micros("2024-03-01T08:00:00.999999Z") {
				t.Errorf("%+v", a)
			}
			if b.Prefix != LT || b.Lo != micros("2024-01-01T00:00:00Z") || b.Hi != micros("2024-12-31T23:59:59.999999Z") {
				t.Errorf("%+v", b)
			}
		}},
		// An unencoded + arrives as a space.
		{"Observation", "date=sa2024-03-01T10:00+02:00", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if v.Prefix != SA || v.Lo != micros("2024-03-01T08:00:00Z") || v.Hi != micros("2024-03-01T08:00:59.999999Z") {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "value-quantity=gt5.4|http://unitsofmeasure.org|mg&value-quantity=le100||mm[Hg]&value-quantity=ap1e2", func(t *testing.T, q *Query) {
			a, b, c := q.Clauses[0].Values[0], q.Clauses[1].Values[0], q.Clauses[2].Values[0]
			if a.Prefix != GT || a.Num != 5.4 || a.NumLo != 5.35 || a.NumHi != 5.45 || a.System != "http://unitsofmeasure.org" || a.Code != "mg" {
				t.Errorf("%+v", a)
			}
			if b.Prefix != LE || b.Num != 100 || b.NumLo != 99.5 || b.NumHi != 100.5 || b.System != "" || b.Code != "mm[Hg]" {
				t.Errorf("%+v", b)
			}
			if c.Prefix != AP || c.Num != 100 || c.NumLo != 50 || c.NumHi != 150 {
				t.Errorf("%+v", c)
			}
		}},
		{"RiskAssessment", "probability=0.80", func(t *testing.T, q *Query) {
			v := q.Clauses[0].Values[0]
			if v.Num != 0.8 || v.NumLo != 0.795 || v.NumHi != 0.805 {
				t.Errorf("%+v", v)
			}
		}},
		{"Observation", "subject=Patient/123&patient=123&performer=" + url.QueryEscape(testBase+"/Practitioner/p1") + "&encounter=http://other.org/Encounter/9", func(t *testing.T, q *Query) {
			enc, pat, perf, subj := q.Clauses[0].Values[0], q.Clauses[1].Values[0], q.Clauses[2].Values[0], q.Clauses[3].Values[0]
			if subj.RefType != "Patient" || subj.RefID != "123" {
				t.Errorf("subject %+v", subj)
			}
			if pat.RefType != "Patient" || pat.RefID != "123" {
				t.Errorf("patient=x must equal patient=Patient/x: %+v", pat)
			}
			if perf.RefType != "Practitioner" || perf.RefID != "p1" {
				t.Errorf("performer %+v", perf)
			}
			if enc.Code != "http://other.org/Encounter/9" || enc.RefID != "" {
				t.Errorf("encounter %+v", enc)
			}
		}},
		{"Observation", "subject:Patient=123&subject=456", func(t *testing.T, q *Query) {
			a, b := q.Clauses[0], q.Clauses[1]
			if a.Modifier != "" || a.Values[0].RefType != "" || a.Values[0].RefID != "456" {
				t.Errorf("%+v", a)
			}
			if b.Modifier != "Patient" || b.Values[0].RefType != "Patient" || b.Values[0].RefID != "123" {
				t.Errorf("%+v", b)
			}
		}},
		{"Observation", "subject:identifier=http://hospital.org/mrn|12345", func(t *testing.T, q *Query) {
			c := q.Clauses[0]
			// A token search of the references' identifiers (identifier.go).
			if c.Modifier != "" || c.Param.Code != "subject:identifier" || c.Param.Type != Token || c.Values[0].System != "http://hospital.org/mrn" || c.Values[0].Code != "12345" {
				t.Errorf("%+v", c)
			}
		}},
		{"Observation", "subject:Patient.organization.partof.name=Acme", func(t *testing.T, q *Query) {
			c := q.Clauses[0]
			if c.Chain == nil || c.Chain.Type != "Patient" || c.Chain.Clause.Chain == nil || c.Chain.Clause.Chain.Type != "Organization" ||
				c.Chain.Clause.Chain.Clause.Chain == nil || c.Chain.Clause.Chain.Clause.Chain.Clause.Param.Code != "name" {
				t.Errorf("three-link chain: %+v", c)
			}
		}},
		{"Patient", "_has:Observation:patient:_has:Provenance:target:agent:Practitioner.name=Ko", func(t *testing.T, q *Query) {
			h := q.Clauses[0].Has
			if h == nil || h.Type != "Observation" || h.Clause.Has == nil || h.Clause.Has.Type != "Provenance" ||
				h.Clause.Has.Clause.Chain == nil || h.Clause.Has.Clause.Chain.Type != "Practitioner" {
				t.Errorf("nested _has ending in a chain: %+v", q.Clauses[0])
			}
		}},
		{"Observation", "subject:Patient.identifier=urn:mrn|7&patient.name=Rivera", func(t *testing.T, q *Query) {
			want := `patient->Patient{name=[{"Prefix":"","Missing":false,"System":"","HasSystem":false,"Code":"","TypeSystem":"","TypeCode":"","Text":"rivera","Exact":"Rivera","Lo":0,"Hi":0,"Num":0,"NumLo":0,"NumHi":0,"RefType":"","RefID":"","Parts":null}]}`
			got := summary(q)
			if !strings.HasPrefix(got, want) {
				t.Errorf("got %s", got)
			}
			c := q.Clauses[1]
			if c.Param.Code != "subject" || c.Chain.Type != "Patient" || c.Chain.Clause.Param.Code != "identifier" || c.Chain.Clause.Values[0].Code != "7" {
				t.Errorf("%s", got)
			}
		}},
		{"Patient", "_has:Observation:patient:code=1234-5", func(t *testing.T, q *Query) {
			c := q.Clauses[0]
			if c.Param != nil || c.Has == nil || c.Has.Type != "Observation" || c.Has.RefParam.Code != "patient" ||
				c.Has.Clause.Param.Code != "code" || c.Has.Clause.Values[0].Code != "1234-5" {
				t.Errorf("%s", summary(q))
			}
		}},
		{"Observation", "code-value-quantity=http://loinc.org|8480-6$gt100,http://loinc.org|8462-4$lt90||mm[Hg]", func(t *testing.T, q *Query) {
			vs := q.Clauses[0].Values
			if len(vs) != 2 || len(vs[0].Parts) != 2 {
				t.Fatalf("%s", summary(q))
			}
			if vs[0].Parts[0].System != "http://loinc.org" || vs[0].Parts[0].Code != "8480-6" || vs[0].Parts[1].Prefix != GT || vs[0].Parts[1].Num != 100 {
				t.Errorf("%+v", vs[0])
			}
			if vs[1].Parts[1].Prefix != LT || vs[1].Parts[1].Code != "mm[Hg]" {
				t.Errorf("%+v", vs[1])
			}
		}},
		{"Observation", "code:missing=true&subject:missing=false", func(t *testing.T, q *Query) {
			a, b := q.Clauses[0], q.Clauses[1]
			if a.Modifier != "missing" || !a.Values[0].Missing || b.Modifier != "missing" || b.Values[0].Missing {
				t.Errorf("%s", summary(q))
			}
		}},
		{"ValueSet", "url:below=http://hl7.org/fhir/ValueSet/", func(t *testing.T, q *Query) {
			c := q.Clauses[0]
			if c.Modifier != "below" || c.Values[0].Code != "http://hl7.org/fhir/ValueSet/" {
				t.Errorf("%+v", c)
			}
		}},
		{"Patient", "_id=a,b&_lastUpdated=gt2024-01-01", func(t *testing.T, q *Query) {
			if q.Clauses[0].Param.Code != "_id" || len(q.Clauses[0].Values) != 2 || q.Clauses[1].Values[0].Prefix != GT {
				t.Errorf("%s", summary(q))
			}
		}},
		// Empty values are ignored, as are the server's own keys.
		{"Patient", "name=&_format=json&_pretty=true&_cursor=abc&gender=,male,", func(t *testing.T, q *Query) {
			if len(q.Clauses) != 1 || len(q.Clauses[0].Values) != 1 || len(q.Ignored) != 0 {
				t.Errorf("%s %v", summary(q), q.Ignored)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"?"+tt.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParseQuery(tt.typ, vals, testBase, true)
			if err != nil {
				t.Fatal(err)
			}
			if q.Type != tt.typ {
				t.Errorf("Type %q", q.Type)
			}
			tt.check(t, q)
		})
	}
}

func TestParseQueryResultParams(t *testing.T) {
	q, err := ParseQuery("Observation", url.Values{
		"_count":              {"20"},
		"_sort":               {"-date,code,_id,_lastUpdated"},
		"_include":            {"Observation:subject", "Observation:performer:Practitioner"},
		"_revinclude":         {"Provenance:target"},
		"_revinclude:iterate": {"Observation:has-member"},
		"_summary":            {"data"},
		"_elements":           {"status, Observation.code"},
		"_total":              {"accurate"},
	}, testBase, true)
	if err != nil {
		t.Fatal(err)
	}
	if q.Count != 20 || q.Summary != "data" || q.Total != "accurate" {
		t.Errorf("count %d summary %q total %q", q.Count, q.Summary, q.Total)
	}
	if len(q.Sort) != 4 || !q.Sort[0].Desc || q.Sort[0].Param.Code != "date" || q.Sort[1].Desc || q.Sort[1].Param.Code != "code" ||
		q.Sort[2].Param != nil || q.Sort[3].Param.Code != "_lastUpdated" {
		t.Errorf("sort %+v", q.Sort)
	}
	if len(q.Include) != 2 || q.Include[0].SourceType != "Observation" || q.Include[0].Param.Code != "subject" ||
		q.Include[1].TargetType != "Practitioner" || q.Include[0].Iterate {
		t.Errorf("include %+v", q.Include)
	}
	if len(q.RevInclude) != 2 || q.RevInclude[0].SourceType != "Provenance" || q.RevInclude[0].Param.Code != "target" ||
		!q.RevInclude[1].Iterate || q.RevInclude[1].Param.Code != "has-member" {
		t.Errorf("revinclude %+v", q.RevInclude)
	}
	if strings.Join(q.Elements, ",") != "status,code" {
		t.Errorf("elements %v", q.Elements)
	}

	q, err = ParseQuery("Patient", url.Values{"_summary": {"count"}, "_include": {"*"}}, testBase, true)
	if err != nil {
		t.Fatal(err)
	}
	if q.Count != 0 || len(q.Include) != 1 || q.Include[0].Param != nil || q.Include[0].SourceType != "Patient" {
		t.Errorf("%+v", q)
	}
	q, _ = ParseQuery("Patient", url.Values{}, testBase, true)
	if q.Count != DefaultCount {
		t.Errorf("default count %d", q.Count)
	}
	q, _ = ParseQuery("Patient", url.Values{"_count": {"5000"}}, testBase, true)
	if q.Count != MaxCount {
		t.Errorf("capped count %d", q.Count)
	}
	q, _ = ParseQuery("Patient", url.Values{"_count": {"0"}}, testBase, true)
	if q.Count != 0 {
		t.Errorf("zero count %d", q.Count)
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		typ, query string
		// strictOnly: lenient parsing ignores it instead (listing ignored).
		strictOnly bool
		ignored    string
		mention    string // the error must name this
	}{
		{"Patient", "foo=bar", true, "foo", `"foo"`},
		{"Patient", "name:sounds=x", true, "name:sounds", `"name:sounds"`},
		{"Observation", "code:below=http://loinc.org|8480-6", true, "code:below", "terminology"},
		{"Observation", "code:in=http://x/ValueSet/y", true, "code:in", "terminology"},
		{"Observation", "subject:Patient.organization.nonesuch=x", true, "subject:Patient.organization.nonesuch", "nonesuch"},
		{"Observation", "subject:Patient.link:Patient.link:Patient.link:Patient.link:Patient.name=x", false, "", "max-search-chains"},
		{"Patient", "_has:Observation:patient:_has:AuditEvent:entity:_has:Provenance:target:_has:AuditEvent:entity:agent:Practitioner.name=x", false, "", "max-search-chains"},
		{"Observation", "subject:Patient.nonesuch=x", true, "subject:Patient.nonesuch", "nonesuch"},
		{"Patient", "_has:Observation:patient:nonesuch=x", true, "_has:Observation:patient:nonesuch", "nonesuch"},
		{"Patient", "_text=x", true, "_text", "_text"},
		{"Patient", "_content=x", true, "_content", "_content"},
		{"Patient", "_filter=name eq x", true, "_filter", "_filter"},
		{"Location", "near=1|2|3|km", true, "near", "near"},
		{"Observation", "date=2024-13-01", false, "", "2024-13-01"},
		{"Observation", "date=2024-02-30", false, "", "2024-02-30"},
		{"Observation", "date=xx2024", false, "", "xx"},
		{"Observation", "date=yesterday", false, "", "ye"},
		{"Observation", "value-quantity=abc", false, "", "abc"},
		{"Observation", "value-quantity=gtNaN", false, "", "NaN"},
		{"Observation", "value-quantity=5|mg", false, "", "5|mg"},
		{"RiskAssessment", "probability=1.0.0", false, "", "1.0.0"},
		{"Patient", "_count=-1", false, "", "-1"},
		{"Patient", "_count=ten", false, "", "ten"},
		{"Patient", "_sort=nonesuch", false, "", "nonesuch"},
		{"Observation", "_sort=code-value-quantity", false, "", "code-value-quantity"},
		{"Patient", "_include=Patient", false, "", "Patient"},
		{"Patient", "_include=Patient:name", false, "", "name"},
		{"Patient", "_include=Nonesuch:x", false, "", "Nonesuch"},
		{"Observation", "_include=Observation:subject:Medication", false, "", "Medication"},
		{"Patient", "_summary=maybe", false, "", "maybe"},
		{"Patient", "_total=all", false, "", "all"},
		{"Observation", "code:missing=yes", false, "", "yes"},
		{"Observation", "code=|", false, "", "|"},
		{"Observation", "subject.name=x", false, "", ":Patient"},
		{"Observation", "subject=Foo/1", false, "", "Foo/1"},
		{"Observation", "subject=a b", false, "", "a b"},
		{"Observation", "subject:Medication=1", false, "", "Medication"},
		{"Patient", "identifier:of-type=MR|123", false, "", "MR|123"},
		{"Observation", "code-value-quantity=http://loinc.org|8480-6", false, "", "$"},
		{"Patient", "_has:Observation:code:code=x", false, "", "code"},
		{"Patient", "_has:Observation=x", false, "", "_has"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"?"+tt.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseQuery(tt.typ, vals, testBase, true)
			if err == nil {
				t.Fatal("strict: no error")
			}
			var fe *fhir.Error
			if !asError(err, &fe) || fhir.StatusOf(err) != 400 {
				t.Fatalf("strict: %v is not a 400 *fhir.Error", err)
			}
			if !strings.Contains(fe.Issues[0].Diagnostics, tt.mention) {
				t.Errorf("strict: %q does not mention %q", fe.Issues[0].Diagnostics, tt.mention)
			}
			q, err := ParseQuery(tt.typ, vals, testBase, false)
			if tt.strictOnly {
				if err != nil {
					t.Fatalf("lenient: %v", err)
				}
				if len(q.Ignored) != 1 || q.Ignored[0] != tt.ignored || len(q.Clauses) != 0 {
					t.Errorf("lenient: ignored %v, clauses %s", q.Ignored, summary(q))
				}
			} else if err == nil || fhir.StatusOf(err) != 400 {
				t.Errorf("lenient: malformed value accepted (%v)", err)
			}
		})
	}
	if _, err := ParseQuery("Nonesuch", nil, testBase, false); err == nil {
		t.Error("unknown type accepted")
	}
}

func asError(err error, fe **fhir.Error) bool {
	e, ok := err.(*fhir.Error)
	*fe = e
	return ok
}
