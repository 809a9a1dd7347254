package search

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirpath"
)

const examples = "../../testdata/fhir-r4-examples"

func loadExample(t testing.TB, name string) *fhir.Value {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examples, name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := fhir.ParseJSON(b, fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func parseRes(t testing.TB, s string) *fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON([]byte(s), fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fmtTime renders an index bound; the open ends of a Period as "-inf"/"+inf".
func fmtTime(us int64) string {
	switch us {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.999999")
}

// fmtEntry renders an entry compactly for comparison with a golden line.
func fmtEntry(e fhir.IndexEntry) string {
	var f []string
	switch e.Type {
	case "token":
		f = append(f, e.System+"|"+e.Code)
		if e.TypeCode != "" {
			f = append(f, "type="+e.TypeSystem+"|"+e.TypeCode)
		}
		if e.Text != "" {
			f = append(f, "text="+e.Text)
		}
	case "string":
		f = append(f, e.Text, "exact="+e.Exact)
	case "uri":
		f = append(f, e.Code)
	case "date":
		f = append(f, fmtTime(e.Lo)+".."+fmtTime(e.Hi))
	case "number", "quantity":
		f = append(f, fmt.Sprintf("%g..%g", e.NumLo, e.NumHi))
		if e.Type == "quantity" {
			f = append(f, e.System+"|"+e.Code)
		}
	case "reference":
		switch {
		case e.RefID != "":
			r := e.RefType + "/" + e.RefID
			if e.RefVersion != "" {
				r += "/_history/" + e.RefVersion
			}
			f = append(f, r)
		case e.Text == "identifier":
			f = append(f, "identifier="+e.System+"|"+e.Code)
		default:
			f = append(f, "url="+e.Code)
			if e.RefVersion != "" {
				f = append(f, "version="+e.RefVersion)
			}
		}
	case "composite":
		var ps []string
		for _, p := range e.Parts {
			ps = append(ps, fmtEntry(p))
		}
		return "(" + strings.Join(ps, " $ ") + ")"
	}
	return strings.Join(f, " ")
}

func entriesOf(es []fhir.IndexEntry, param string) []string {
	var out []string
	for _, e := range es {
		if e.Param == param {
			out = append(out, fmtEntry(e))
		}
	}
	return out
}

func TestExtractExamples(t *testing.T) {
	tests := []struct {
		file, param string
		want        []string
	}{
		{"Observation-example.json", "code", []string{
			"http://loinc.org|29463-7 text=body weight",
			"http://loinc.org|3141-9 text=body weight measured",
			"http://snomed.info/sct|27113001 text=body weight",
			"http://acme.org/devices/clinical-codes|body-weight text=body weight",
		}},
		{"Observation-example.json", "subject", []string{"Patient/example"}},
		{"Observation-example.json", "patient", []string{"Patient/example"}},
		{"Observation-example.json", "encounter", []string{"Encounter/example"}},
		{"Observation-example.json", "date", []string{"2016-03-28T00:00:00..2016-03-28T23:59:59.999999"}},
		{"Observation-example.json", "value-quantity", []string{"184.5..185.5 http://unitsofmeasure.org|[lb_av]"}},
		{"Observation-example.json", "status", []string{"|final"}},
		{"Observation-example.json", "_id", []string{"|example"}},
		{"Observation-example.json", "code-value-quantity", []string{
			"(http://loinc.org|29463-7 text=body weight $ 184.5..185.5 http://unitsofmeasure.org|[lb_av])",
			"(http://loinc.org|3141-9 text=body weight measured $ 184.5..185.5 http://unitsofmeasure.org|[lb_av])",
			"(http://snomed.info/sct|27113001 text=body weight $ 184.5..185.5 http://unitsofmeasure.org|[lb_av])",
			"(http://acme.org/devices/clinical-codes|body-weight text=body weight $ 184.5..185.5 http://unitsofmeasure.org|[lb_av])",
		}},
		{"Observation-example.json", "value-concept", nil},
		{"Observation-blood-pressure.json", "component-code-value-quantity", []string{
			"(http://loinc.org|8480-6 text=systolic blood pressure $ 106.5..107.5 http://unitsofmeasure.org|mm[Hg])",
			"(http://snomed.info/sct|271649006 text=systolic blood pressure $ 106.5..107.5 http://unitsofmeasure.org|mm[Hg])",
			"(http://acme.org/devices/clinical-codes|bp-s text=systolic blood pressure $ 106.5..107.5 http://unitsofmeasure.org|mm[Hg])",
			"(http://loinc.org|8462-4 text=diastolic blood pressure $ 59.5..60.5 http://unitsofmeasure.org|mm[Hg])",
		}},
		{"Observation-blood-pressure.json", "code-value-quantity", nil},
		{"Observation-blood-pressure.json", "performer", []string{"Practitioner/example"}},
		{"Observation-blood-pressure.json", "identifier", []string{"urn:ietf:rfc:3986|urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"}},
		{"Patient-example.json", "family", []string{"chalmers exact=Chalmers", "windsor exact=Windsor"}},
		{"Patient-example.json", "given", []string{
			"peter exact=Peter", "james exact=James", "jim exact=Jim", "peter exact=Peter", "james exact=James",
		}},
		{"Patient-example.json", "name", []string{
			"chalmers exact=Chalmers", "peter exact=Peter", "james exact=James", "jim exact=Jim",
			"windsor exact=Windsor", "peter exact=Peter", "james exact=James",
		}},
		{"Patient-example.json", "birthdate", []string{"1974-12-25T00:00:00..1974-12-25T23:59:59.999999"}},
		{"Patient-example.json", "identifier", []string{
			"urn:oid:1.2.36.146.595.217.0.1|12345",
			"urn:oid:1.2.36.146.595.217.0.1|12345 type=http://terminology.hl7.org/CodeSystem/v2-0203|MR",
		}},
		{"Patient-example.json", "gender", []string{"|male"}},
		{"Patient-example.json", "active", []string{"|true"}},
		{"Patient-example.json", "deceased", []string{"|false"}},
		{"Patient-example.json", "address-city", []string{"pleasantville exact=PleasantVille"}},
		{"Patient-example.json", "phone", []string{"|(03) 5555 6473", "|(03) 3410 5613", "|(03) 5555 8834"}},
		{"Patient-example.json", "organization", []string{"Organization/1"}},
		{"Patient-example.json", "general-practitioner", nil},
		// Period: start.lo .. end.hi, a zone honoured.
		{"Encounter-home.json", "date", []string{"2015-01-17T06:00:00..2015-01-17T06:30:00.999999"}},
		{"CarePlan-f001.json", "date", []string{"2011-06-26T00:00:00..2011-06-27T23:59:59.999999"}},
		// Age is a Quantity.
		{"Condition-f202.json", "onset-age", []string{"51.5..52.5 http://unitsofmeasure.org|a"}},
	}
	cache := map[string][]fhir.IndexEntry{}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.param, func(t *testing.T) {
			es, ok := cache[tt.file]
			if !ok {
				es = Extract(loadExample(t, tt.file), testBase)
				cache[tt.file] = es
			}
			got := entriesOf(aliasView(es, typeOfFile(tt.file), tt.param), tt.param)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

func TestExtractSynthetic(t *testing.T) {
	tests := []struct {
		name, res, param string
		want             []string
	}{
		{"timing events and bounds", `{"resourceType":"CarePlan","id":"t","activity":[{"detail":{"status":"scheduled","scheduledTiming":{
			"event":["2024-05-01T09:00:00Z","2024-05-02"],"repeat":{"boundsPeriod":{"start":"2024-05-01"}}}}}]}`,
			"activity-date", []string{
				"2024-05-01T09:00:00..2024-05-01T09:00:00.999999",
				"2024-05-02T00:00:00..2024-05-02T23:59:59.999999",
				"2024-05-01T00:00:00..+inf",
			}},
		{"open period", `{"resourceType":"Encounter","id":"e","status":"in-progress","class":{"code":"AMB"},"period":{"end":"2024"}}`,
			"date", []string{"-inf..2024-12-31T23:59:59.999999"}},
		{"precision of numbers", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":100.00,"unit":"mg"},"component":[{"code":{"text":"y"},"valueQuantity":{"value":1.5e2}}]}`,
			"combo-value-quantity", []string{"145..155 |", "99.995..100.005 |"}},
		{"text-only concept and accents", `{"resourceType":"Observation","id":"o","status":"final","code":{"coding":[{"code":"c1","display":"Crème Brûlée"}],"text":"Ça Va"}}`,
			"code", []string{"|c1 text=creme brulee", "| text=ca va"}},
		{"references", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},
			"subject":{"reference":"` + testBase + `/Patient/p1"},
			"performer":[{"reference":"Practitioner/d1/_history/3"},{"reference":"http://other.org/fhir/Practitioner/9"},
				{"reference":"#contained"},{"reference":"urn:uuid:0a2c8c2e-57a0-4a8e-9b5c-b2a6f0d7e4a1"},
				{"identifier":{"system":"http://npi","value":"123"}}]}`,
			"performer", []string{"Practitioner/d1/_history/3", "url=http://other.org/fhir/Practitioner/9", "identifier=http://npi|123"}},
		{"local absolute reference", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"` + testBase + `/Patient/p1"}}`,
			"patient", []string{"Patient/p1"}},
		{"patient only for Patient targets", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Group/g"}}`,
			"patient", nil},
		{"canonical with version", `{"resourceType":"QuestionnaireResponse","id":"q","status":"completed","questionnaire":"http://x.org/Questionnaire/phq9|2.0"}`,
			"questionnaire", []string{"url=http://x.org/Questionnaire/phq9 version=2.0"}},
		{"meta", `{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2024-01-02T03:04:05.678Z","tag":[{"system":"s","code":"t"}],"profile":["http://p"],"source":"http://src"}}`,
			"_lastUpdated", []string{"2024-01-02T03:04:05.678..2024-01-02T03:04:05.678999"}},
		{"meta tag", `{"resourceType":"Patient","id":"p","meta":{"tag":[{"system":"s","code":"t"}],"security":[{"system":"s2","code":"R"}],"profile":["http://p"]}}`,
			"_tag", []string{"s|t"}},
		{"deceased date", `{"resourceType":"Patient","id":"p","deceasedDateTime":"2020-01-01"}`, "deceased", []string{"|true"}},
		{"deceased true", `{"resourceType":"Patient","id":"p","deceasedBoolean":true}`, "death-date", nil},
		{"money", `{"resourceType":"ChargeItem","id":"c","status":"billed","code":{"text":"x"},"subject":{"reference":"Patient/p"},"priceOverride":{"value":12.5,"currency":"EUR"}}`,
			"price-override", []string{"12.45..12.55 urn:iso:std:iso:4217|EUR"}},
		{"range", `{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p"},"onsetRange":{"low":{"value":10,"code":"a","system":"http://unitsofmeasure.org"},"high":{"value":20}}}`,
			"onset-age", []string{"9.5..20.5 http://unitsofmeasure.org|a"}},
		{"extension value", `{"resourceType":"Patient","id":"p","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-extensions-Patient-mothersMaidenName","valueString":"Ödön"}]}`,
			"mothersMaidenName", []string{"odon exact=Ödön"}},
		{"where on a coded element", `{"resourceType":"Patient","id":"p","telecom":[{"system":"email","value":"a@b.c"},{"system":"phone","value":"1"}]}`,
			"email", []string{"|a@b.c"}},
		{"contained resource not indexed as the container", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Patient","id":"c1","gender":"male"}],"subject":{"reference":"#c1"}}`,
			"subject", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := parseRes(t, tt.res)
			got := entriesOf(aliasView(Extract(res, testBase), res.GetString("resourceType"), tt.param), tt.param)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// allResources yields every resource of the official examples, with the
// entries of Bundles and contained resources, so every parameter meets as
// many shapes as the examples have.
func allResources(t testing.TB) []*fhir.Value {
	files, err := filepath.Glob(filepath.Join(examples, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var out []*fhir.Value
	var walk func(v *fhir.Value)
	walk = func(v *fhir.Value) {
		if v == nil || v.Kind != fhir.KindObject || v.GetString("resourceType") == "" {
			return
		}
		out = append(out, v)
		for _, name := range []string{"entry", "contained"} {
			if a := v.Get(name); a != nil && a.Kind == fhir.KindArray {
				for _, e := range a.Array {
					if name == "entry" {
						e = e.Get("resource")
					}
					walk(e)
				}
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhir.ParseJSON(b, fhir.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(v)
	}
	return out
}

// TestEveryParameterOnEveryExample evaluates each parameter of each type on
// all official examples: nothing may panic, and every combination of
// parameter type and node type that occurs must index something somewhere
// unless it is one of the few that cannot be indexed.
func TestEveryParameterOnEveryExample(t *testing.T) {
	r := r4()
	nParams := 0
	for _, typ := range resourceTypes() {
		ps := ParamsFor(typ)
		if len(ps) == 0 {
			t.Errorf("%s has no parameters", typ)
		}
		nParams += len(ps)
		for i, p := range ps {
			if i > 0 && ps[i-1].Code >= p.Code {
				t.Errorf("%s: parameters not sorted at %s", typ, p.Code)
			}
			if Lookup(typ, p.Code) != p {
				t.Errorf("%s: Lookup(%s)", typ, p.Code)
			}
			if p.Type == Composite && len(p.Components) < 2 {
				t.Errorf("%s.%s: %d components", typ, p.Code, len(p.Components))
			}
		}
		for _, code := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
			if Lookup(typ, code) == nil {
				t.Errorf("%s: no %s", typ, code)
			}
		}
		for _, code := range []string{"_text", "_content", "_query", "_list", "_filter", "near"} {
			if Lookup(typ, code) != nil {
				t.Errorf("%s: unsupported %s is listed", typ, code)
			}
		}
	}
	t.Logf("%d parameters over %d types", nParams, len(resourceTypes()))

	// Cannot be indexed: a string where a date is expected (CarePlan
	// scheduledString), an Attachment for a reference (Consent source),
	// SampledData for a quantity.
	unindexable := map[string]bool{"date<-string": true, "reference<-Attachment": true, "quantity<-SampledData": true}
	seen, indexed := map[string]bool{}, map[string]bool{}
	res := allResources(t)
	for _, v := range res {
		typ := v.GetString("resourceType")
		x := &extractor{base: testBase}
		ev := &evaluation{r: r, s: fhirpath.NewSession(v, nil)}
		for _, d := range r.params[typ] {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s/%s %s: panic %v", typ, v.GetString("id"), d.p.Code, p)
					}
				}()
				if _, err := d.expr.Evaluate(v, nil); err != nil {
					t.Errorf("%s/%s %s: %v", typ, v.GetString("id"), d.p.Code, err)
				}
				for _, n := range ev.eval(d.expr, nil, nil) {
					if d.p.Type == Composite {
						continue
					}
					k := string(d.p.Type) + "<-" + n.t.extractAs
					if n.t.extractAs == "" {
						k = string(d.p.Type) + "<-" + n.t.name
					}
					seen[k] = true
					if len(x.entries(d.p.Code, d.p.Type, n, nil)) > 0 {
						indexed[k] = true
					}
				}
			}()
		}
		Extract(v, testBase)
	}
	for k := range seen {
		if !indexed[k] && !unindexable[k] {
			t.Errorf("%s: never indexed anything", k)
		}
	}
	t.Logf("%d resources, node kinds %d", len(res), len(seen))
}

func resourceTypes() []string {
	var out []string
	for typ := range r4().params {
		out = append(out, typ)
	}
	return out
}

func TestCompartments(t *testing.T) {
	types := CompartmentTypes("Patient")
	if len(types) < 50 {
		t.Fatalf("Patient compartment: %d types", len(types))
	}
	ps := CompartmentParams("Patient", "Observation")
	var codes []string
	for _, p := range ps {
		codes = append(codes, p.Code)
	}
	if strings.Join(codes, ",") != "subject,performer" {
		t.Errorf("Observation in Patient compartment via %v", codes)
	}
	if CompartmentParams("Patient", "Patient") == nil {
		t.Error("Patient: link param expected")
	}
	if CompartmentParams("Patient", "Organization") != nil {
		t.Error("Organization is not in the Patient compartment")
	}
	for _, typ := range types {
		for _, p := range CompartmentParams("Patient", typ) {
			if p.Type != Reference || Lookup(typ, p.Code) != p {
				t.Errorf("%s.%s", typ, p.Code)
			}
		}
	}
}

func TestNormalizeString(t *testing.T) {
	for in, want := range map[string]string{
		"Müller": "muller", "ÉLODIE": "elodie", "São Paulo": "sao paulo", "plain": "plain", "Ærø": "ærø", "": "",
	} {
		if got := NormalizeString(in); got != want {
			t.Errorf("NormalizeString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDateRange(t *testing.T) {
	for _, tt := range []struct{ in, lo, hi string }{
		{"2024", "2024-01-01T00:00:00", "2024-12-31T23:59:59.999999"},
		{"2024-02", "2024-02-01T00:00:00", "2024-02-29T23:59:59.999999"},
		{"2024-02-29", "2024-02-29T00:00:00", "2024-02-29T23:59:59.999999"},
		{"2024-02-29T10:00", "2024-02-29T10:00:00", "2024-02-29T10:00:59.999999"},
		{"2024-02-29T10:00:00", "2024-02-29T10:00:00", "2024-02-29T10:00:00.999999"},
		{"2024-02-29T10:00:00.5Z", "2024-02-29T10:00:00.5", "2024-02-29T10:00:00.599999"},
		{"2024-02-29T10:00:00.123-05:30", "2024-02-29T15:30:00.123", "2024-02-29T15:30:00.123999"},
		{"2024-01-01T00:00:00+14:00", "2023-12-31T10:00:00", "2023-12-31T10:00:00.999999"},
	} {
		lo, hi, ok := dateRange(tt.in)
		if !ok || fmtTime(lo) != tt.lo || fmtTime(hi) != tt.hi {
			t.Errorf("%s: %v %s..%s, want %s..%s", tt.in, ok, fmtTime(lo), fmtTime(hi), tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "24", "2024-1", "2024-00", "2024-13", "2023-02-29", "2024-01-01T", "2024-01-01T25:00",
		"2024-01-01T10:60", "2024-01-01T10:00:61", "2024-01-01T10:00:00.", "2024-01-01T10:00:00+2", "2024-01-01T10:00:00X", "2024/01/01"} {
		if _, _, ok := dateRange(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNumberRange(t *testing.T) {
	for _, tt := range []struct {
		in        string
		v, lo, hi float64
	}{
		{"100", 100, 99.5, 100.5},
		{"100.00", 100, 99.995, 100.005},
		{"1e2", 100, 50, 150},
		{"1.5e2", 150, 145, 155},
		{"-2.5", -2.5, -2.55, -2.45},
		{"0.80", 0.8, 0.795, 0.805},
		{"5.4", 5.4, 5.35, 5.45},
		{"12E-1", 1.2, 1.15, 1.25},
		{"0", 0, -0.5, 0.5},
		{"-0.0", 0, -0.05, 0.05},
		{"123456789012345678901.5", 123456789012345678901.5, 123456789012345678901.45, 123456789012345678901.55},
	} {
		v, lo, hi, ok := numberRange(tt.in)
		if !ok || v != tt.v || lo != tt.lo || hi != tt.hi {
			t.Errorf("%s: %v %g [%g, %g], want %g [%g, %g]", tt.in, ok, v, lo, hi, tt.v, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "-", ".5", "5.", "1e", "NaN", "Inf", "0x10", "1_000", "1e99999", "1 ", "+-1"} {
		if _, _, _, ok := numberRange(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// aliasView: the entries answering param of typ. An alias parameter
// (Param.Alias) has none of its own: they are its aliased parameters'
// entries (restricted to references to AliasRefType), shown here under
// its code, in extraction order.
func aliasView(es []fhir.IndexEntry, typ, param string) []fhir.IndexEntry {
	p := Lookup(typ, param)
	if p == nil || len(p.Alias) == 0 {
		return es
	}
	var out []fhir.IndexEntry
	for _, e := range es {
		if slices.Contains(p.Alias, e.Param) && (p.AliasRefType == "" || e.RefType == p.AliasRefType) {
			e.Param = param
			out = append(out, e)
		}
	}
	return out
}

// typeOfFile: "Observation-example.json" holds an Observation.
func typeOfFile(name string) string {
	typ, _, _ := strings.Cut(name, "-")
	return typ
}

// TestAliases pins which parameters are answered by others' values, and
// that Extract writes nothing for them.
func TestAliases(t *testing.T) {
	want := map[string]string{
		"Observation combo-code":                "code component-code",
		"Observation combo-code-value-quantity": "code-value-quantity component-code-value-quantity",
		"Observation combo-value-quantity":      "component-value-quantity value-quantity",
		"Observation patient":                   "subject is Patient",
		"Provenance patient":                    "target is Patient",
		"Encounter practitioner":                "participant is Practitioner",
		"Observation code":                      "",
		"Observation subject":                   "",
		"Observation component-code":            "",
	}
	for k, w := range want {
		typ, code, _ := strings.Cut(k, " ")
		p := Lookup(typ, code)
		if p == nil {
			t.Fatalf("%s: no such parameter", k)
		}
		got := strings.Join(p.Alias, " ")
		if p.AliasRefType != "" {
			got += " is " + p.AliasRefType
		}
		if got != w {
			t.Errorf("%s: alias %q, want %q", k, got, w)
		}
	}
	res := parseRes(t, `{"resourceType":"Observation","id":"o","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"subject":{"reference":"Patient/p"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120}}]}`)
	for _, e := range Extract(res, testBase) {
		if p := Lookup("Observation", e.Param); p == nil || len(p.Alias) > 0 {
			t.Errorf("Extract wrote an entry for %s, which is an alias", e.Param)
		}
	}
}
