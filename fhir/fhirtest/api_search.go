package fhirtest

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Search over HTTP: an Inferno-style battery against the official
// examples, every declared parameter, paging under writes, and the
// largest searches the default limits allow.

// invalidExamples are the three official examples that break the base
// definitions, and the element each breaks.
var invalidExamples = map[string]string{
	"Questionnaire-qs1.json":           "linkId",
	"Observation-clinical-gender.json": "Observation.performer",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
}

// loadExamples PUTs every valid official example the gateway takes (all
// but c.features.RefusedExamples) at its own id, so the references between
// examples resolve as their authors meant, and returns the "Type/id" of
// those it left out.
func loadExamples(t *testing.T, c *apiClient) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(ExamplesDir(t), "*.json"))
	left := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(file)
		if _, bad := invalidExamples[name]; bad {
			continue
		}
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, body)
		key := m["resourceType"].(string) + "/" + m["id"].(string)
		if _, refused := c.features.RefusedExamples[name]; refused {
			left[key] = true
			continue
		}
		if r := c.do(http.MethodPut, "/"+key, body); r.status != 201 {
			t.Fatalf("load %s: %d %s", name, r.status, r.body)
		}
	}
	return left
}

// searchAll walks every page of a search and returns the "Type/id" of
// each match (in order) and of each include; every Bundle must pass the
// validator and each next link must be absolute on the gateway.
func searchAll(t *testing.T, c *apiClient, path string, headers ...string) (matches, includes []string, first map[string]any) {
	t.Helper()
	next := path
	for pages := 0; next != ""; pages++ {
		if pages > 500 {
			t.Fatalf("%s: more than 500 pages", path)
		}
		r := c.do(http.MethodGet, c.local(next), nil, headers...)
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
		next = nextLink(b)
		if next != "" && !strings.HasPrefix(next, c.URL+"/") {
			t.Fatalf("next link %q is not absolute on this server", next)
		}
		for _, e := range entriesOf(b) {
			key := resourceKey(e["resource"])
			switch e["search"].(map[string]any)["mode"] {
			case "match":
				matches = append(matches, key)
			case "include":
				includes = append(includes, key)
			}
		}
	}
	return matches, includes, first
}

// entriesOf is a Bundle's entries.
func entriesOf(b map[string]any) []map[string]any {
	raw, _ := b["entry"].([]any)
	out := make([]map[string]any, len(raw))
	for i, e := range raw {
		out[i] = e.(map[string]any)
	}
	return out
}

// resourceKey is "Type/id" of a resource (a decoded map).
func resourceKey(res any) string {
	m, _ := res.(map[string]any)
	typ, _ := m["resourceType"].(string)
	id, _ := m["id"].(string)
	return typ + "/" + id
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

var (
	vitals1999 = []string{"bmi-using-related", "bmi", "body-height", "body-length", "body-temperature", "head-circumference", "heart-rate", "mbp", "respiratory-rate", "vitals-panel"}
	f001Obs    = []string{"ekg", "f001", "f002", "f003", "f004", "f005", "unsat"}
)

// apiTestSearchConformance runs an Inferno-style battery of searches
// against the official examples.
func apiTestSearchConformance(t *testing.T, c *apiClient) {
	left := loadExamples(t, c)
	// want is the expectation without the examples the gateway refused.
	want := func(keys ...string) []string {
		out := []string{}
		for _, k := range keys {
			if !left[k] {
				out = append(out, k)
			}
		}
		return sorted(out)
	}
	obs := func(ids ...string) []string {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = "Observation/" + id
		}
		return want(keys...)
	}
	c.do(http.MethodPut, "/Patient/tagged", []byte(`{"resourceType":"Patient","id":"tagged","meta":{"source":"urn:kap:source","tag":[{"system":"urn:kap:test","code":"tagged"}]}}`))
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
		{"/Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345", want("Patient/example")},
		{"/Patient?gender=other", want("Patient/pat2")},
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
		{"/Patient?birthdate=1974-12-25", want("Patient/ch-example", "Patient/example")},
		{"/Patient?birthdate=ne1974-12-25&gender=female&birthdate=lt1980", want("Patient/genetics-example1", "Patient/mom", "Patient/proband")},
		// quantity and number
		{"/Observation?value-quantity=gt100", obs("656", "example", "f204")},
		{"/Observation?value-quantity=185|http://unitsofmeasure.org|[lb_av]", obs("example")},
		{"/Observation?value-quantity=lt10||mmol/L", obs("f001")},
		// string: starts-with, case and accent insensitive; :exact; :contains
		{"/Patient?family=chalmers", want("Patient/example")},
		{"/Patient?family=CHAL", want("Patient/example")},
		{"/Patient?family:exact=Chalmers", want("Patient/example")},
		{"/Patient?family:exact=chalmers", want()},
		{"/Patient?name:contains=EUVE", want("Patient/f001")},
		{"/Patient?given=duck", want("Patient/pat1", "Patient/pat2")},
		// composite
		{"/Observation?code-value-quantity=http://loinc.org|29463-7$185|http://unitsofmeasure.org|[lb_av]", obs("example")},
		{"/Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", obs("blood-pressure", "blood-pressure-dar")},
		// chaining and _has
		{"/Observation?subject:Patient.family=bor", obs("f202", "f203", "f204", "f205", "f206")},
		{"/Observation?subject:Patient.identifier=urn:oid:2.16.840.1.113883.2.4.6.3|738472983", obs(f001Obs...)},
		{"/Patient?_has:Observation:patient:code=http://loinc.org|8867-4", want("Patient/example")},
		{"/Observation?date=sa2018-04-01", obs("abdo-tender", "map-sitting")},
		{"/Observation?date=gt2018-04-01", obs("abdo-tender", "f001", "map-sitting")},
		{"/Observation?date=le1999-07-02", obs(vitals1999...)},
		{"/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|444222222", want("Patient/genetics-example1", "Patient/mom")},
		// uri
		{"/Questionnaire?url=http://hl7.org/fhir/Questionnaire/gcs", want("Questionnaire/gcs")},
		{"/Questionnaire?url:below=http://hl7.org/fhir/Questionnaire", want("Questionnaire/3141", "Questionnaire/bb", "Questionnaire/f201", "Questionnaire/gcs")},
		// common parameters
		{"/Observation?_id=example,f001", obs("example", "f001")},
		{"/Condition?_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|TBOO", want("Condition/f202")},
		{"/Observation?_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns&code=http://loinc.org|85354-9", obs("blood-pressure", "blood-pressure-cancel", "blood-pressure-dar")},
		{"/Patient?_tag=urn:kap:test|tagged", want("Patient/tagged")},
		{"/Patient?_source=urn:kap:source", want("Patient/tagged")},
		{"/Patient?_lastUpdated=gt2000-01-01&_id=tagged", want("Patient/tagged")},
		{"/Patient?_lastUpdated=lt2000-01-01", want()},
		{"/Patient/f001/Observation", obs(f001Obs...)},
		{"/Patient/f001/Observation?code=http://loinc.org|15074-8", obs("f001", "unsat")},
	}
	for _, tc := range exact {
		q := strings.ReplaceAll(tc.query, "{base}", c.URL)
		got, _, _ := searchAll(t, c, q)
		if !reflect.DeepEqual(sorted(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s\n got  %v\n want %v", tc.query, sorted(got), tc.want)
		}
		// POST _search gives the same answer
		if path, rawq, ok := strings.Cut(q, "?"); ok && !strings.Contains(path, "/Patient/f001/") {
			r := c.do(http.MethodPost, path+"/_search", []byte(rawq), "Content-Type", "application/x-www-form-urlencoded")
			if r.status != 200 {
				t.Errorf("POST %s/_search: %d %s", path, r.status, r.body)
				continue
			}
			var posted []string
			for _, e := range entriesOf(decode(t, r.body)) {
				if e["search"].(map[string]any)["mode"] == "match" {
					posted = append(posted, resourceKey(e["resource"]))
				}
			}
			if !reflect.DeepEqual(sorted(posted), sorted(got)) {
				t.Errorf("POST _search %s differs from GET:\n post %v\n get  %v", q, sorted(posted), sorted(got))
			}
		}
	}

	// :missing
	missing, _, _ := searchAll(t, c, "/Observation?subject:missing=true")
	if !slices.Contains(missing, "Observation/decimal") || !slices.Contains(missing, "Observation/vp-oyster") || slices.Contains(missing, "Observation/example") {
		t.Errorf("subject:missing=true gave %v", missing)
	}
	present, _, _ := searchAll(t, c, "/Observation?subject:missing=false")
	if slices.Contains(present, "Observation/decimal") || !slices.Contains(present, "Observation/example") {
		t.Errorf("subject:missing=false gave %v", present)
	}

	// _include, _revinclude (Provenance:target)
	m, inc, _ := searchAll(t, c, "/Observation?_id=example&_include=Observation:subject")
	if !reflect.DeepEqual(m, []string{"Observation/example"}) || !reflect.DeepEqual(inc, []string{"Patient/example"}) {
		t.Errorf("_include: matches %v includes %v", m, inc)
	}
	m, inc, _ = searchAll(t, c, "/DocumentReference?_id=example&_revinclude=Provenance:target")
	if !reflect.DeepEqual(m, []string{"DocumentReference/example"}) || !slices.Contains(inc, "Provenance/signature") {
		t.Errorf("_revinclude=Provenance:target: matches %v includes %v", m, inc)
	}

	// :text on a CodeableConcept's text and displays
	text, _, _ := searchAll(t, c, "/Observation?code:text=heart")
	if !slices.Contains(text, "Observation/heart-rate") || slices.Contains(text, "Observation/example") {
		t.Errorf("code:text=heart gave %v", text)
	}
	// _include:iterate follows the included Patient to its Organization
	m, inc, _ = searchAll(t, c, "/Observation?_id=f001&_include=Observation:subject&_include:iterate=Patient:organization")
	if !reflect.DeepEqual(m, []string{"Observation/f001"}) || !slices.Contains(inc, "Patient/f001") || !slices.Contains(inc, "Organization/f001") {
		t.Errorf("_include:iterate: matches %v includes %v", m, inc)
	}
	// $everything: the patient and its compartment
	ev, _, _ := searchAll(t, c, "/Patient/f001/$everything")
	for _, w := range append(obs(f001Obs...), "Patient/f001") {
		if !slices.Contains(ev, w) {
			t.Errorf("$everything lacks %s: %v", w, ev)
		}
	}
	if slices.Contains(ev, "Observation/example") {
		t.Errorf("$everything of f001 holds another patient's Observation")
	}

	// _summary=count
	_, _, b := searchAll(t, c, "/Observation?subject=Patient/f001&_summary=count")
	if fmt.Sprint(b["total"]) != "7" || b["entry"] != nil {
		t.Errorf("_summary=count: total %v entries %v", b["total"], b["entry"])
	}
	_, _, b = searchAll(t, c, "/Observation?subject=Patient/f001&_total=accurate")
	if fmt.Sprint(b["total"]) != "7" {
		t.Errorf("_total=accurate: total %v", b["total"])
	}

	// _sort: ascending and descending dates, with paging
	asc, _, _ := searchAll(t, c, "/Observation?subject=Patient/f001&_sort=date,_id&_count=2")
	desc, _, _ := searchAll(t, c, "/Observation?subject=Patient/f001&_sort=-date,_id&_count=3")
	if len(asc) != 7 || len(desc) != 7 {
		t.Fatalf("sorted paging lost matches: asc %v desc %v", asc, desc)
	}
	if asc[0] != "Observation/f001" && asc[0] != "Observation/unsat" {
		t.Errorf("_sort=date gave %v, -date gave %v", asc, desc)
	}
	// ekg (2015) is the latest start; f001's period has no end, so
	// descending (by upper bound) it may come first, but ekg precedes the
	// closed 2013 periods.
	if asc[len(asc)-1] != "Observation/ekg" || slices.Index(desc, "Observation/ekg") > slices.Index(desc, "Observation/f005") {
		t.Errorf("date sort: asc %v desc %v", asc, desc)
	}

	// all pages walked, each match exactly once
	all, _, _ := searchAll(t, c, "/Observation")
	paged, _, _ := searchAll(t, c, "/Observation?_count=7")
	if len(all) < 60 || !reflect.DeepEqual(sorted(all), sorted(paged)) || len(slices.Compact(sorted(paged))) != len(paged) {
		t.Errorf("paging: %d unpaged, %d paged", len(all), len(paged))
	}

	// _elements and _summary=true subset and tag the resource
	r := c.do(http.MethodGet, "/Patient?_id=example&_elements=birthDate", nil)
	res := entriesOf(decode(t, r.body))[0]["resource"].(map[string]any)
	if res["birthDate"] == nil || res["name"] != nil || !strings.Contains(string(r.body), "SUBSETTED") {
		t.Errorf("_elements=birthDate: %s", r.body)
	}
	r = c.do(http.MethodGet, "/Patient?_id=example&_summary=true", nil)
	res = entriesOf(decode(t, r.body))[0]["resource"].(map[string]any)
	if res["name"] == nil || res["text"] != nil || res["contact"] != nil {
		t.Errorf("_summary=true: %s", r.body)
	}

	// unknown parameters: lenient ignores and reports, strict refuses
	r = c.do(http.MethodGet, "/Observation?bogus=1&code=http://loinc.org|8867-4", nil)
	bm := decode(t, r.body)
	self := bm["link"].([]any)[0].(map[string]any)["url"].(string)
	if r.status != 200 || strings.Contains(self, "bogus") || !strings.Contains(string(r.body), `"outcome"`) {
		t.Errorf("lenient unknown parameter: %d self %s", r.status, self)
	}
	issues := assertOutcome(t, c.do(http.MethodGet, "/Observation?bogus=1", nil, "Prefer", "handling=strict"), 400)
	if !strings.Contains(toJSON(issues), "bogus") {
		t.Errorf("strict refusal does not name the parameter: %v", issues)
	}
	// malformed values are always 400
	for _, q := range []string{"/Observation?date=2019-13-45", "/Observation?date=xx2019", "/Observation?value-quantity=abc", "/Observation?_count=-1", "/Observation?_cursor=garbage"} {
		assertOutcome(t, c.do(http.MethodGet, q, nil), 400)
	}
}

// sampleValue is a well-formed search value for a parameter of p's type.
func sampleValue(p *search.Param) string {
	switch p.Type {
	case search.Token:
		return "http://example.org|x"
	case search.String:
		return "x"
	case search.Date:
		return "ge2020-01-01"
	case search.Number:
		return "gt1"
	case search.Quantity:
		return "lt5|http://unitsofmeasure.org|mg"
	case search.Reference:
		if len(p.Targets) > 0 {
			return p.Targets[0] + "/x"
		}
		return "Patient/x"
	case search.URI:
		return "http://example.org/x"
	}
	return ""
}

// apiTestDeclaredParameters: each search parameter the
// CapabilityStatement declares answers 200 with a searchset Bundle, with
// a typed value and with :missing, as Inferno checks; so does each
// declared _include and _revinclude.
func apiTestDeclaredParameters(t *testing.T, c *apiClient) {
	c.do(http.MethodPut, "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`))
	cs := decode(t, c.do(http.MethodGet, "/metadata", nil).body)
	strict := func(q string) apiResponse { return c.do(http.MethodGet, q, nil, "Prefer", "handling=strict") }
	n := 0
	for _, res := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		rm := res.(map[string]any)
		typ := rm["type"].(string)
		params, _ := rm["searchParam"].([]any)
		for _, sp := range params {
			code := sp.(map[string]any)["name"].(string)
			queries := []string{url.QueryEscape(code+":missing") + "=true"}
			if p := search.Lookup(typ, code); p != nil && sampleValue(p) != "" {
				queries = append(queries, url.QueryEscape(code)+"="+url.QueryEscape(sampleValue(p)))
			}
			for _, q := range queries {
				r := strict("/" + typ + "?" + q)
				if m, err := apiDecode(r.body); r.status != 200 || err != nil || m["type"] != "searchset" {
					t.Errorf("declared %s?%s answers %d: %.300s", typ, q, r.status, r.body)
				}
				n++
			}
		}
		for _, list := range []string{"searchInclude", "searchRevInclude"} {
			incs, _ := rm[list].([]any)
			param := map[string]string{"searchInclude": "_include", "searchRevInclude": "_revinclude"}[list]
			for _, inc := range incs {
				if r := strict("/" + typ + "?" + param + "=" + url.QueryEscape(inc.(string))); r.status != 200 {
					t.Errorf("declared %s %s answers %d: %.300s", param, inc, r.status, r.body)
				}
			}
		}
	}
	if n < 2000 {
		t.Errorf("only %d declared-parameter searches ran", n)
	}
}

// apiTestPaging walks 20 pages of a search while another client creates,
// updates and deletes matching resources: every resource that matched
// when the first page was read is returned exactly once (HAPI #3599 and
// #2859 shift or lose pages here).
func apiTestPaging(t *testing.T, c *apiClient) {
	const n = 200 // 20 pages of 10
	body := func(id string, v int) []byte {
		return []byte(fmt.Sprintf(`{"resourceType":"Observation","id":"%s","status":"final","code":{"coding":[{"system":"urn:kap:test","code":"paging"}]},"valueQuantity":{"value":%d}}`, id, v))
	}
	for _, sortBy := range []string{"", "&_sort=-_lastUpdated", "&_sort=value-quantity"} {
		// top up: the previous round's writer deleted some
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("p%03d", i)
			if r := c.do(http.MethodPut, "/Observation/"+id, body(id, i)); r.status >= 300 {
				t.Fatalf("load: %d %s", r.status, r.body)
			}
		}
		all, _, _ := searchAll(t, c, "/Observation?code=urn:kap:test|paging&_count=1000")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writes atomic.Int64
		// The writer updates an existing match (moves it in _lastUpdated
		// and value order), creates a new match, deletes an old one. It
		// is not the test's goroutine: it reports with Errorf only.
		writer := func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				old := fmt.Sprintf("p%03d", (i*37)%n)
				nw := fmt.Sprintf("new%s%d", strings.Trim(sortBy, "&_=-"), i)
				for _, w := range []struct {
					method, path string
					body         []byte
				}{
					{http.MethodPut, "/Observation/" + old, body(old, 1000-i)},
					{http.MethodPut, "/Observation/" + nw, body(nw, i)},
					{http.MethodDelete, fmt.Sprintf("/Observation/p%03d", (i*53+7)%n), nil},
				} {
					if _, err := c.try(w.method, w.path, w.body); err != nil {
						t.Errorf("writer: %v", err)
						return
					}
				}
				writes.Add(3)
			}
		}
		seen := map[string]int{}
		next := "/Observation?code=urn:kap:test|paging&_count=10" + sortBy
		pages := 0
		for next != "" {
			r := c.do(http.MethodGet, c.local(next), nil)
			if r.status != 200 {
				close(stop)
				wg.Wait()
				t.Fatalf("page %d: %d %s", pages, r.status, r.body)
			}
			b := decode(t, r.body)
			for _, e := range entriesOf(b) {
				seen[resourceKey(e["resource"])]++
			}
			next = nextLink(b)
			pages++
			if pages == 1 {
				// the first page pins the snapshot; write from now on, and
				// let at least one round of writes land before the next
				// page (on a busy machine the writer may otherwise not run
				// before the walk ends)
				wg.Go(writer)
				for deadline := time.Now().Add(20 * time.Second); writes.Load() < 3; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						close(stop)
						wg.Wait()
						t.Fatalf("%q: the writer made no write in 20 s", sortBy)
					}
				}
			}
		}
		close(stop)
		wg.Wait()
		if writes.Load() < 3 {
			t.Errorf("%q: the writer made only %d writes during the walk; the test proves nothing", sortBy, writes.Load())
		}
		for _, id := range all {
			if seen[id] != 1 {
				t.Errorf("%q: %s seen %d times, want exactly once", sortBy, id, seen[id])
			}
		}
		for id, n := range seen {
			if n > 1 {
				t.Errorf("%q: %s seen %d times", sortBy, id, n)
			}
		}
		if pages < 20 {
			t.Errorf("%q: walked %d pages, want 20", sortBy, pages)
		}
	}
}

// apiTestSearchLimits: the largest search the default limits allow runs
// (its SQL within SQLite's expression depth, quickly on PostgreSQL),
// paging included; one past each limit is a 400 naming it. Before the
// limits, 500 OR-ed values, 1,000 criteria or 1,000 sort keys were a 500
// on SQLite, and 1,000 sort keys on PostgreSQL.
func apiTestSearchLimits(t *testing.T, c *apiClient) {
	d := search.DefaultLimits
	list := func(n int, format string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(format, i)
		}
		return strings.Join(parts, ",")
	}
	var worst []string
	// max-search-params criteria: max-search-chains of them chained or
	// _has, the values spread to max-search-total-values with one
	// criterion at max-search-values.
	worst = append(worst, "name="+list(d.MaxValues, "n%d"))
	left := d.MaxTotalValues - d.MaxValues
	for i := 0; i < d.MaxChains; i++ {
		worst = append(worst, "_has:Observation:patient:code="+list(10, "http://loinc.org|%d-1"))
		left -= 10
	}
	// The rest string criteria, the kind the PostgreSQL planner is
	// slowest with, each holding a value every patient matches.
	for i := len(worst); i < d.MaxParams; i++ {
		n := left / (d.MaxParams - i)
		if i%2 == 0 {
			worst = append(worst, "family=n,"+list(n-1, "f%d"))
		} else {
			worst = append(worst, "given=g,"+list(n-1, "g%d"))
		}
		left -= n
	}
	sortKeys := "birthdate,-family,given,gender,-address-city,identifier,-general-practitioner,_id"
	worst = append(worst, "_sort="+sortKeys, "_count=1")
	var incs []string
	for _, s := range []string{"Provenance:target", "Observation:subject", "Observation:patient", "Encounter:subject", "Encounter:patient",
		"Condition:subject", "Condition:patient", "AllergyIntolerance:patient", "Immunization:patient", "CarePlan:subject", "CarePlan:patient",
		"Procedure:patient", "MedicationRequest:patient", "DiagnosticReport:patient", "Goal:patient", "Flag:patient"} {
		incs = append(incs, "_revinclude="+url.QueryEscape(s))
	}
	worst = append(worst, incs...)
	worstQuery := strings.Join(worst, "&")

	over := map[string]string{
		"max-search-values":       "name=" + list(500, "a%d"),
		"max-search-params":       strings.Repeat("name=a&", 1000) + "name=a",
		"max-sort-keys":           "_sort=" + strings.Repeat("birthdate,", 999) + "birthdate",
		"max-search-total-values": strings.Repeat("name="+list(100, "a%d")+"&", 3) + "family=x",
		"max-includes":            strings.Join(incs, "&") + "&_include=Patient:organization",
		"max-search-chains":       strings.Repeat("_has:Observation:patient:code=1&", 5) + "name=x",
	}
	for i := 0; i < 3; i++ {
		p := fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"n%d","given":["g"]}],"birthDate":"19%02d-06-01","gender":"female"}`, i, 50+i)
		if r := c.do("POST", "/Patient", []byte(p)); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	// The worst case matches nothing (the _has criteria find no
	// Observation); without them, the same shape matches, and its pages
	// are walked.
	start := time.Now()
	r := c.do("GET", "/Patient?"+worstQuery, nil)
	if r.status != 200 {
		t.Fatalf("the largest allowed search: %d %.600s", r.status, r.body)
	}
	t.Logf("largest allowed search (%d bytes of query): %v", len(worstQuery), time.Since(start))
	var noHas []string
	for _, p := range worst {
		if !strings.HasPrefix(p, "_has:") {
			noHas = append(noHas, p)
		}
	}
	if pages := walkPages(t, c, "/Patient?"+strings.Join(noHas, "&")); pages != 3 {
		t.Errorf("walked %d pages of one match each, want 3", pages)
	}
	// Composite values nest deepest in SQL: max-search-values of them,
	// beside a chained criterion of as many, sorted by max-sort-keys and
	// paged.
	for i := 1; i <= 3; i++ {
		o := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-0%d",`+
			`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`, i)
		if r := c.do("POST", "/Observation", []byte(o)); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	if r := c.do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"a0"}]}`)); r.status != 201 {
		t.Fatalf("create p1: %d %s", r.status, r.body)
	}
	comp := list(d.MaxValues, "http://loinc.org|8480-6$ge%d|http://unitsofmeasure.org|mm[Hg]")
	composite := "/Observation?component-code-value-quantity=" + url.QueryEscape(comp) + "&subject:Patient.name=" + list(d.MaxValues, "a%d") +
		"&_sort=date,-code,status,subject,-value-quantity,category,performer,_id&_count=1"
	if pages := walkPages(t, c, composite); pages != 3 {
		t.Errorf("walked %d composite pages, want 3", pages)
	}
	for limit, q := range over {
		issues := assertOutcome(t, c.do("GET", "/Patient?"+q, nil), 400)
		if d := diagnostics(issues); !strings.Contains(d, limit+" = ") || !strings.Contains(d, "-"+limit) {
			t.Errorf("%s: the 400 does not name the limit: %s", limit, d)
		}
	}
}

// walkPages follows a search's next links (at most 10 pages) and returns
// how many pages it read.
func walkPages(t *testing.T, c *apiClient, next string) int {
	t.Helper()
	pages := 0
	for ; next != "" && pages < 10; pages++ {
		r := c.do("GET", c.local(next), nil)
		if r.status != 200 {
			t.Fatalf("page %d: %d %.600s", pages, r.status, r.body)
		}
		next = nextLink(decode(t, r.body))
	}
	return pages
}
