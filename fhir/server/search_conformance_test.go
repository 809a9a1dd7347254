package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// loadExamples PUTs every valid official example at its own id, so the
// references between examples resolve as their authors meant.
func loadExamples(t *testing.T, srv *testServer) {
	t.Helper()
	files, _ := filepath.Glob("../../testdata/fhir-r4-examples/*.json")
	for _, f := range files {
		if _, bad := invalidExamples[filepath.Base(f)]; bad {
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, body)
		typ, id := m["resourceType"].(string), m["id"].(string)
		if r := srv.do(http.MethodPut, "/"+typ+"/"+id, body); r.status != 201 {
			t.Fatalf("load %s: %d %s", filepath.Base(f), r.status, r.body)
		}
	}
}

// searchAll walks every page of a search and returns the "Type/id" of
// each match (in order) and of each include; every Bundle must pass the
// server's own validator and each page must be distinct.
func searchAll(t *testing.T, srv *testServer, path string, headers ...string) (matches, includes []string, first map[string]any) {
	t.Helper()
	next := path
	for pages := 0; next != ""; pages++ {
		if pages > 500 {
			t.Fatalf("%s: more than 500 pages", path)
		}
		r := srv.do(http.MethodGet, strings.TrimPrefix(next, srv.URL), nil, headers...)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		if _, _, err := fhir.ParseResource(r.body); err != nil {
			t.Fatalf("GET %s: the searchset Bundle fails validation: %v", next, err)
		}
		b := decode(t, r.body)
		if first == nil {
			first = b
		}
		if b["type"] != "searchset" {
			t.Fatalf("Bundle.type %v", b["type"])
		}
		next = ""
		for _, l := range b["link"].([]any) {
			lm := l.(map[string]any)
			if lm["relation"] == "next" {
				next = lm["url"].(string)
				if !strings.HasPrefix(next, srv.URL+"/") {
					t.Fatalf("next link %q is not absolute on this server", next)
				}
			}
		}
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			em := e.(map[string]any)
			mode := em["search"].(map[string]any)["mode"]
			res := em["resource"].(map[string]any)
			key := res["resourceType"].(string) + "/" + asString(res["id"])
			switch mode {
			case "match":
				matches = append(matches, key)
			case "include":
				includes = append(includes, key)
			}
		}
	}
	return matches, includes, first
}

func asString(v any) string { s, _ := v.(string); return s }

func sorted(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func obs(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = "Observation/" + id
	}
	return sorted(out)
}

var vitals1999 = []string{"bmi-using-related", "bmi", "body-height", "body-length", "body-temperature", "head-circumference", "heart-rate", "mbp", "respiratory-rate", "vitals-panel"}
var f001Obs = []string{"ekg", "f001", "f002", "f003", "f004", "f005", "unsat"}

// TestSearchConformance runs an Inferno-style battery of searches over
// real HTTP against the official examples, on every backend.
func TestSearchConformance(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			loadExamples(t, srv)
			testSearchConformance(t, srv)
		})
	}
}

func testSearchConformance(t *testing.T, srv *testServer) {
	srv.do(http.MethodPut, "/Patient/tagged", []byte(`{"resourceType":"Patient","id":"tagged","meta":{"source":"urn:kap:source","tag":[{"system":"urn:kap:test","code":"tagged"}]}}`))
	exact := []struct {
		query string
		want  []string
	}{
		// token
		{"/Observation?code=http://loinc.org|85354-9", obs("blood-pressure", "blood-pressure-cancel", "blood-pressure-dar")},
		{"/Observation?code=85354-9", obs("blood-pressure", "blood-pressure-cancel", "blood-pressure-dar")},
		{"/Observation?code=|85354-9", obs()},
		{"/Observation?code=http://loinc.org|8310-5", obs("body-temperature", "f202")},
		{"/Observation?code=http://loinc.org|8310-5,http://loinc.org|8867-4", obs("body-temperature", "f202", "heart-rate")},
		{"/Observation?code=http://loinc.org|8310-5&status=final", obs("body-temperature")},
		{"/Observation?subject=Patient/f201&code:not=http://loinc.org|8310-5", obs("f203", "f204", "f205", "f206")},
		{"/Observation?status=cancelled", obs("blood-pressure-cancel", "unsat")},
		{"/Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345", []string{"Patient/example"}},
		{"/Patient?gender=other", []string{"Patient/pat2"}},
		// reference: Type/id, id, absolute URL and :Type are one search
		{"/Observation?subject=Patient/f001", obs(f001Obs...)},
		{"/Observation?subject=f001", obs(f001Obs...)},
		{"/Observation?patient=f001", obs(f001Obs...)},
		{"/Observation?subject:Patient=f001", obs(f001Obs...)},
		{"/Observation?subject={base}/Patient/f001", obs(f001Obs...)},
		// date, with prefixes and precision ranges
		{"/Observation?date=1999-07-02", obs(vitals1999...)},
		{"/Observation?date=lt2000-01-01", obs(vitals1999...)},
		{"/Observation?date=eb2000", obs(vitals1999...)},
		// f001's period has no end, so it reaches past 2018
		{"/Observation?date=ge2018-01-01", obs("abdo-tender", "bgpanel", "bloodgroup", "f001", "map-sitting", "rhstatus", "trachcare")},
		{"/Observation?date=1999", obs(vitals1999...)},
		{"/Observation?date=ge1999-07-02&date=le1999-07-02", obs(vitals1999...)},
		{"/Patient?birthdate=1974-12-25", []string{"Patient/ch-example", "Patient/example"}},
		{"/Patient?birthdate=ne1974-12-25&gender=female&birthdate=lt1980", []string{"Patient/genetics-example1", "Patient/mom", "Patient/proband"}},
		// quantity and number
		{"/Observation?value-quantity=gt100", obs("656", "example", "f204")},
		{"/Observation?value-quantity=185|http://unitsofmeasure.org|[lb_av]", obs("example")},
		{"/Observation?value-quantity=lt10||mmol/L", obs("f001")},
		// string: starts-with, case and accent insensitive; :exact; :contains
		{"/Patient?family=chalmers", []string{"Patient/example"}},
		{"/Patient?family=CHAL", []string{"Patient/example"}},
		{"/Patient?family:exact=Chalmers", []string{"Patient/example"}},
		{"/Patient?family:exact=chalmers", nil},
		{"/Patient?name:contains=EUVE", []string{"Patient/f001"}},
		{"/Patient?given=duck", []string{"Patient/pat1", "Patient/pat2"}},
		// composite
		{"/Observation?code-value-quantity=http://loinc.org|29463-7$185|http://unitsofmeasure.org|[lb_av]", obs("example")},
		{"/Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", obs("blood-pressure", "blood-pressure-dar")},
		// chaining and _has
		{"/Observation?subject:Patient.family=bor", obs("f202", "f203", "f204", "f205", "f206")},
		{"/Observation?subject:Patient.identifier=urn:oid:2.16.840.1.113883.2.4.6.3|738472983", obs(f001Obs...)},
		{"/Patient?_has:Observation:patient:code=http://loinc.org|8867-4", []string{"Patient/example"}},
		{"/Observation?date=sa2018-04-01", obs("abdo-tender", "map-sitting")},
		{"/Observation?date=gt2018-04-01", obs("abdo-tender", "f001", "map-sitting")},
		{"/Observation?date=le1999-07-02", obs(vitals1999...)},
		{"/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|444222222", []string{"Patient/genetics-example1", "Patient/mom"}},
		// uri
		{"/Questionnaire?url=http://hl7.org/fhir/Questionnaire/gcs", []string{"Questionnaire/gcs"}},
		{"/Questionnaire?url:below=http://hl7.org/fhir/Questionnaire", []string{"Questionnaire/3141", "Questionnaire/bb", "Questionnaire/f201", "Questionnaire/gcs"}},
		// common parameters
		{"/Observation?_id=example,f001", obs("example", "f001")},
		{"/Condition?_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|TBOO", []string{"Condition/f202"}},
		{"/Observation?_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns&code=http://loinc.org|85354-9", obs("blood-pressure", "blood-pressure-cancel", "blood-pressure-dar")},
		{"/Patient?_tag=urn:kap:test|tagged", []string{"Patient/tagged"}},
		{"/Patient?_source=urn:kap:source", []string{"Patient/tagged"}},
		{"/Patient?_lastUpdated=gt2000-01-01&_id=tagged", []string{"Patient/tagged"}},
		{"/Patient?_lastUpdated=lt2000-01-01", nil},
		{"/Patient/f001/Observation", obs(f001Obs...)},
		{"/Patient/f001/Observation?code=http://loinc.org|15074-8", obs("f001", "unsat")},
	}
	for _, tc := range exact {
		q := strings.ReplaceAll(tc.query, "{base}", srv.URL)
		got, _, _ := searchAll(t, srv, q)
		if !reflect.DeepEqual(sorted(got), sorted(tc.want)) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s\n got  %v\n want %v", tc.query, sorted(got), sorted(tc.want))
		}
		// POST _search gives the same answer
		if path, rawq, ok := strings.Cut(q, "?"); ok && !strings.Contains(path, "/Patient/f001/") {
			r := srv.do(http.MethodPost, path+"/_search", []byte(rawq), "Content-Type", "application/x-www-form-urlencoded")
			if r.status != 200 {
				t.Errorf("POST %s/_search: %d %s", path, r.status, r.body)
				continue
			}
			var posted []string
			entries, _ := decode(t, r.body)["entry"].([]any)
			for _, e := range entries {
				res := e.(map[string]any)["resource"].(map[string]any)
				if e.(map[string]any)["search"].(map[string]any)["mode"] == "match" {
					posted = append(posted, res["resourceType"].(string)+"/"+asString(res["id"]))
				}
			}
			if !reflect.DeepEqual(sorted(posted), sorted(got)) {
				t.Errorf("POST _search %s differs from GET:\n post %v\n get  %v", q, sorted(posted), sorted(got))
			}
		}
	}

	// :missing
	missing, _, _ := searchAll(t, srv, "/Observation?subject:missing=true")
	if !contains(missing, "Observation/decimal") || !contains(missing, "Observation/vp-oyster") || contains(missing, "Observation/example") {
		t.Errorf("subject:missing=true gave %v", missing)
	}
	present, _, _ := searchAll(t, srv, "/Observation?subject:missing=false")
	if contains(present, "Observation/decimal") || !contains(present, "Observation/example") {
		t.Errorf("subject:missing=false gave %v", present)
	}

	// _include, _revinclude (Provenance:target)
	m, inc, _ := searchAll(t, srv, "/Observation?_id=example&_include=Observation:subject")
	if !reflect.DeepEqual(m, []string{"Observation/example"}) || !reflect.DeepEqual(inc, []string{"Patient/example"}) {
		t.Errorf("_include: matches %v includes %v", m, inc)
	}
	m, inc, _ = searchAll(t, srv, "/DocumentReference?_id=example&_revinclude=Provenance:target")
	if !reflect.DeepEqual(m, []string{"DocumentReference/example"}) || !contains(inc, "Provenance/signature") {
		t.Errorf("_revinclude=Provenance:target: matches %v includes %v", m, inc)
	}

	// :text on a CodeableConcept's text and displays
	text, _, _ := searchAll(t, srv, "/Observation?code:text=heart")
	if !contains(text, "Observation/heart-rate") || contains(text, "Observation/example") {
		t.Errorf("code:text=heart gave %v", text)
	}
	// _include:iterate follows the included Patient to its Organization
	m, inc, _ = searchAll(t, srv, "/Observation?_id=f001&_include=Observation:subject&_include:iterate=Patient:organization")
	if !reflect.DeepEqual(m, []string{"Observation/f001"}) || !contains(inc, "Patient/f001") || !contains(inc, "Organization/f001") {
		t.Errorf("_include:iterate: matches %v includes %v", m, inc)
	}
	// $everything: the patient and its compartment
	ev, _, _ := searchAll(t, srv, "/Patient/f001/$everything")
	for _, want := range append(obs(f001Obs...), "Patient/f001") {
		if !contains(ev, want) {
			t.Errorf("$everything lacks %s: %v", want, ev)
		}
	}
	if contains(ev, "Observation/example") {
		t.Errorf("$everything of f001 holds another patient's Observation")
	}

	// _summary=count
	_, _, b := searchAll(t, srv, "/Observation?subject=Patient/f001&_summary=count")
	if fmt.Sprint(b["total"]) != "7" || b["entry"] != nil {
		t.Errorf("_summary=count: total %v entries %v", b["total"], b["entry"])
	}
	_, _, b = searchAll(t, srv, "/Observation?subject=Patient/f001&_total=accurate")
	if fmt.Sprint(b["total"]) != "7" {
		t.Errorf("_total=accurate: total %v", b["total"])
	}

	// _sort: ascending and descending dates, with paging
	asc, _, _ := searchAll(t, srv, "/Observation?subject=Patient/f001&_sort=date,_id&_count=2")
	desc, _, _ := searchAll(t, srv, "/Observation?subject=Patient/f001&_sort=-date,_id&_count=3")
	if len(asc) != 7 || len(desc) != 7 {
		t.Fatalf("sorted paging lost matches: asc %v desc %v", asc, desc)
	}
	if asc[0] != "Observation/f001" && asc[0] != "Observation/unsat" {
		t.Errorf("_sort=date gave %v, -date gave %v", asc, desc)
	}
	// ekg (2015) is the latest start; f001's period has no end, so
	// descending (by upper bound) it may come first, but ekg precedes the
	// closed 2013 periods.
	if asc[len(asc)-1] != "Observation/ekg" || index(desc, "Observation/ekg") > index(desc, "Observation/f005") {
		t.Errorf("date sort: asc %v desc %v", asc, desc)
	}

	// all pages walked, each match exactly once
	all, _, _ := searchAll(t, srv, "/Observation")
	paged, _, _ := searchAll(t, srv, "/Observation?_count=7")
	if len(all) < 60 || !reflect.DeepEqual(sorted(all), sorted(paged)) || len(uniq(paged)) != len(paged) {
		t.Errorf("paging: %d unpaged, %d paged (%d distinct)", len(all), len(paged), len(uniq(paged)))
	}

	// _elements and _summary=true subset and tag the resource
	r := srv.do(http.MethodGet, "/Patient?_id=example&_elements=birthDate", nil)
	res := decode(t, r.body)["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if res["birthDate"] == nil || res["name"] != nil || !strings.Contains(string(r.body), "SUBSETTED") {
		t.Errorf("_elements=birthDate: %s", r.body)
	}
	r = srv.do(http.MethodGet, "/Patient?_id=example&_summary=true", nil)
	res = decode(t, r.body)["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if res["name"] == nil || res["text"] != nil || res["contact"] != nil {
		t.Errorf("_summary=true: %s", r.body)
	}

	// unknown parameters: lenient ignores and reports, strict refuses
	r = srv.do(http.MethodGet, "/Observation?bogus=1&code=http://loinc.org|8867-4", nil)
	bm := decode(t, r.body)
	self := bm["link"].([]any)[0].(map[string]any)["url"].(string)
	if r.status != 200 || strings.Contains(self, "bogus") || !strings.Contains(string(r.body), `"outcome"`) {
		t.Errorf("lenient unknown parameter: %d self %s", r.status, self)
	}
	issues := assertOutcome(t, srv.do(http.MethodGet, "/Observation?bogus=1", nil, "Prefer", "handling=strict"), 400)
	if !strings.Contains(toJSON(issues), "bogus") {
		t.Errorf("strict refusal does not name the parameter: %v", issues)
	}
	// malformed values are always 400
	assertOutcome(t, srv.do(http.MethodGet, "/Observation?date=2019-13-45", nil), 400)
	assertOutcome(t, srv.do(http.MethodGet, "/Observation?date=xx2019", nil), 400)
	assertOutcome(t, srv.do(http.MethodGet, "/Observation?value-quantity=abc", nil), 400)
	assertOutcome(t, srv.do(http.MethodGet, "/Observation?_count=-1", nil), 400)
	assertOutcome(t, srv.do(http.MethodGet, "/Observation?_cursor=garbage", nil), 400)
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
