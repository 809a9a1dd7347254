package fhirtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The REST interactions of issue 13: the method in history, $everything
// paging, PATCH, conditional delete, deep chains and _has, the
// :identifier modifier and $validate modes.

// historyRequests walks every page of a history and returns, newest
// first, "vid METHOD url status" of each entry.
func historyRequests(t *testing.T, c *apiClient, path string) []string {
	t.Helper()
	var out []string
	for next := path; next != ""; {
		r := c.do(http.MethodGet, c.local(next), nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		b := decode(t, r.body)
		next = nextLink(b)
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			em := e.(map[string]any)
			req := em["request"].(map[string]any)
			resp := em["response"].(map[string]any)
			vid := strings.Trim(strings.TrimPrefix(resp["etag"].(string), "W/"), `"`)
			out = append(out, vid+" "+req["method"].(string)+" "+req["url"].(string)+" "+resp["status"].(string))
		}
	}
	return out
}

// apiTestHistoryMethods: a history reports the method that wrote each
// version, not one guessed from its number: version 1 made by PUT is a
// PUT, a version made by a transaction entry has the entry's method.
func apiTestHistoryMethods(t *testing.T, c *apiClient) {
	c.do("PUT", "/Patient/hm1", []byte(`{"resourceType":"Patient","id":"hm1"}`))
	c.do("PUT", "/Patient/hm1", []byte(`{"resourceType":"Patient","id":"hm1","active":true}`))
	c.do("DELETE", "/Patient/hm1", nil)
	c.do("PUT", "/Patient/hm1", []byte(`{"resourceType":"Patient","id":"hm1","active":false}`))
	got := strings.Join(historyRequests(t, c, "/Patient/hm1/_history"), "; ")
	want := "4 PUT Patient/hm1 200; 3 DELETE Patient/hm1 204; 2 PUT Patient/hm1 200; 1 PUT Patient/hm1 201"
	if got != want {
		t.Errorf("instance history\n got  %s\n want %s", got, want)
	}

	r := c.do("POST", "/Patient", []byte(`{"resourceType":"Patient","active":true}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	got = strings.Join(historyRequests(t, c, "/Patient/"+idOf(r.body)+"/_history"), "; ")
	if got != "1 POST Patient 201" {
		t.Errorf("history of a POST: %s", got)
	}

	tx := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":{"resourceType":"Patient","id":"hm2"},"request":{"method":"PUT","url":"Patient/hm2"}}]}`)
	if r := c.do("POST", "/", tx); r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	// Type history is served by the store's history pages, not the
	// instance history: it must say the same.
	var hm2 []string
	for _, e := range historyRequests(t, c, "/Patient/_history?_count=2") {
		if strings.Contains(e, "hm1") || strings.Contains(e, "hm2") {
			hm2 = append(hm2, e)
		}
	}
	want = "1 PUT Patient/hm2 201; 4 PUT Patient/hm1 200; 3 DELETE Patient/hm1 204; 2 PUT Patient/hm1 200; 1 PUT Patient/hm1 201"
	if got := strings.Join(hm2, "; "); got != want {
		t.Errorf("type history\n got  %s\n want %s", got, want)
	}
}

// searchsetAll walks every page of a searchset and returns "Type/id" of
// each entry, the pages' sizes and the total of the first page.
func searchsetAll(t *testing.T, c *apiClient, path string) (ids []string, sizes []int, total int) {
	t.Helper()
	total = -1
	for next := path; next != ""; {
		r := c.do(http.MethodGet, c.local(next), nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		b := decode(t, r.body)
		if b["type"] != "searchset" {
			t.Fatalf("GET %s: Bundle.type %v", next, b["type"])
		}
		if n, ok := b["total"].(json.Number); ok && total < 0 {
			v, _ := n.Int64()
			total = int(v)
		}
		next = nextLink(b)
		entries, _ := b["entry"].([]any)
		sizes = append(sizes, len(entries))
		for _, e := range entries {
			res := e.(map[string]any)["resource"].(map[string]any)
			ids = append(ids, res["resourceType"].(string)+"/"+res["id"].(string))
		}
	}
	return ids, sizes, total
}

// apiTestEverythingPaging: Patient/$everything with _count (paging whose
// pages do not shift under writes), _type, _since, start and end;
// anything else is refused, not ignored.
func apiTestEverythingPaging(t *testing.T, c *apiClient) {
	put := func(path, body string) {
		t.Helper()
		if r := c.do("PUT", path, []byte(body)); r.status != 200 && r.status != 201 {
			t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
		}
	}
	obs := func(id, patient string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, id, patient)
	}
	put("/Patient/ev1", `{"resourceType":"Patient","id":"ev1"}`)
	put("/Patient/ev2", `{"resourceType":"Patient","id":"ev2"}`)
	for i := range 5 {
		put(fmt.Sprintf("/Observation/ev1-o%d", i), obs(fmt.Sprintf("ev1-o%d", i), "ev1"))
	}
	put("/Observation/ev2-o0", obs("ev2-o0", "ev2"))
	for i := range 2 {
		put(fmt.Sprintf("/Encounter/ev1-e%d", i), fmt.Sprintf(`{"resourceType":"Encounter","id":"ev1-e%d","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/ev1"}}`, i))
	}
	put("/Condition/ev1-c0", `{"resourceType":"Condition","id":"ev1-c0","subject":{"reference":"Patient/ev1"}}`)

	whole, sizes, total := searchsetAll(t, c, "/Patient/ev1/$everything")
	want := "Patient/ev1 Condition/ev1-c0 Encounter/ev1-e0 Encounter/ev1-e1 Observation/ev1-o0 Observation/ev1-o1 Observation/ev1-o2 Observation/ev1-o3 Observation/ev1-o4"
	if strings.Join(whole, " ") != want || total != 9 || len(sizes) != 1 {
		t.Fatalf("$everything: %v (pages %v, total %d)\nwant %s", whole, sizes, total, want)
	}
	paged, sizes, total := searchsetAll(t, c, "/Patient/ev1/$everything?_count=4")
	if strings.Join(paged, " ") != want || total != 9 || fmt.Sprint(sizes) != "[4 4 1]" {
		t.Errorf("$everything?_count=4: %v (pages %v, total %d)", paged, sizes, total)
	}

	// Writes between pages shift nothing: what was there is shown once,
	// what comes after the page boundary shows up, what is before it not.
	r := c.do("GET", "/Patient/ev1/$everything?_count=4", nil)
	if r.status != 200 {
		t.Fatalf("$everything?_count=4: %d %s", r.status, r.body)
	}
	next := nextLink(decode(t, r.body))
	if next == "" {
		t.Fatal("$everything?_count=4 of 9 resources has no next link")
	}
	put("/Condition/ev1-c1", `{"resourceType":"Condition","id":"ev1-c1","subject":{"reference":"Patient/ev1"}}`) // before the boundary
	put("/Observation/ev1-o5", obs("ev1-o5", "ev1"))                                                             // after it
	if r := c.do("DELETE", "/Observation/ev1-o4", nil); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	rest, _, _ := searchsetAll(t, c, next)
	if got := strings.Join(rest, " "); got != "Observation/ev1-o0 Observation/ev1-o1 Observation/ev1-o2 Observation/ev1-o3 Observation/ev1-o5" {
		t.Errorf("pages after writes: %s", got)
	}

	time.Sleep(5 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	put("/Observation/ev1-o1", strings.Replace(obs("ev1-o1", "ev1"), `"final"`, `"amended"`, 1))
	put("/Encounter/ev1-e2", `{"resourceType":"Encounter","id":"ev1-e2","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/ev1"}}`)

	for _, tc := range []struct{ query, want string }{
		{"_type=Observation", "Observation/ev1-o0 Observation/ev1-o1 Observation/ev1-o2 Observation/ev1-o3 Observation/ev1-o5"},
		{"_type=Encounter,Patient", "Patient/ev1 Encounter/ev1-e0 Encounter/ev1-e1 Encounter/ev1-e2"},
		{"_type=Condition&_type=Encounter&_count=2", "Condition/ev1-c0 Condition/ev1-c1 Encounter/ev1-e0 Encounter/ev1-e1 Encounter/ev1-e2"},
		{"_since=" + mid.Format(time.RFC3339Nano), "Encounter/ev1-e2 Observation/ev1-o1"},
		{"_since=" + mid.Format(time.RFC3339Nano) + "&_type=Observation&_count=1", "Observation/ev1-o1"},
	} {
		got, _, total := searchsetAll(t, c, "/Patient/ev1/$everything?"+strings.ReplaceAll(tc.query, "+", "%2B"))
		if strings.Join(got, " ") != tc.want || total != len(got) {
			t.Errorf("$everything?%s: %v (total %d)\n want %s", tc.query, got, total, tc.want)
		}
	}
	for _, q := range []string{"_type=Nope", "_type=Organization", "_count=0", "_count=x", "_since=yesterday", "_cursor=garbage", "_count=1&_count=2",
		"start=yesterday", "end=2020-13-45", "start=2024-02-01&end=2024-01-01", "start=2020&start=2021", "_elements=id"} {
		t.Run(q, func(t *testing.T) {
			assertOutcome(t, c.in(t).do("GET", "/Patient/ev1/$everything?"+q, nil), http.StatusBadRequest)
		})
	}
	// A cursor belongs to its query.
	r = c.do("GET", "/Patient/ev1/$everything?_count=2", nil)
	cur := nextLink(decode(t, r.body))
	_, raw, _ := strings.Cut(cur, "_cursor=")
	raw, _, _ = strings.Cut(raw, "&")
	assertOutcome(t, c.do("GET", "/Patient/ev1/$everything?_count=2&_type=Observation&_cursor="+raw, nil), http.StatusBadRequest)
	assertOutcome(t, c.do("GET", "/Patient/ev2/$everything?_count=2&_cursor="+raw, nil), http.StatusBadRequest)

	// start and end: care dates, by each type's date search parameter
	// (Observation.effective, Encounter.period); the Patient and resources
	// without such a date (a Condition, an Observation without effective)
	// stay in.
	put("/Patient/ev3", `{"resourceType":"Patient","id":"ev3"}`)
	dated := func(id, effective string) {
		t.Helper()
		put("/Observation/"+id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/ev3"}%s}`, id, effective))
	}
	dated("ev3-d2023", `,"effectiveDateTime":"2023-06-01"`)
	dated("ev3-d2024", `,"effectiveDateTime":"2024-03-05T10:00:00Z"`)
	dated("ev3-p", `,"effectivePeriod":{"start":"2023-12-20","end":"2024-01-05"}`)
	dated("ev3-nodate", "")
	put("/Condition/ev3-c", `{"resourceType":"Condition","id":"ev3-c","subject":{"reference":"Patient/ev3"}}`)
	put("/Encounter/ev3-e", `{"resourceType":"Encounter","id":"ev3-e","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/ev3"},"period":{"start":"2024-02-01T09:00:00Z","end":"2024-02-01T10:00:00Z"}}`)
	for _, tc := range []struct{ query, want string }{
		{"start=2024-01-01", "Patient/ev3 Condition/ev3-c Encounter/ev3-e Observation/ev3-d2024 Observation/ev3-nodate Observation/ev3-p"},
		{"end=2023-12-31", "Patient/ev3 Condition/ev3-c Observation/ev3-d2023 Observation/ev3-nodate Observation/ev3-p"},
		{"start=2024-01&end=2024-02", "Patient/ev3 Condition/ev3-c Encounter/ev3-e Observation/ev3-nodate Observation/ev3-p"},
		{"start=2024-01-06&end=2024-01-31", "Patient/ev3 Condition/ev3-c Observation/ev3-nodate"},
		{"start=2024-01-01&_type=Observation&_count=1", "Observation/ev3-d2024 Observation/ev3-nodate Observation/ev3-p"},
	} {
		got, _, total := searchsetAll(t, c, "/Patient/ev3/$everything?"+tc.query)
		if strings.Join(got, " ") != tc.want || total != len(got) {
			t.Errorf("$everything?%s: %v (total %d)\n want %s", tc.query, got, total, tc.want)
		}
	}
}

// apiTestPatch: JSON Patch and FHIRPath Patch, with If-Match, conditional
// PATCH, and refusals that name the operation; a refused patch writes
// nothing.
func apiTestPatch(t *testing.T, c *apiClient) {
	const jp, fj = "application/json-patch+json", "application/fhir+json"
	r := c.do("PUT", "/Patient/pp1", []byte(`{"resourceType":"Patient","id":"pp1","identifier":[{"system":"urn:pp","value":"1"}],"active":false,"name":[{"family":"Ng","given":["A"]}],"birthDate":"1970-01-01"}`))
	if r.status != 201 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	history := func() string {
		t.Helper()
		return strings.Join(historyRequests(t, c, "/Patient/pp1/_history"), "; ")
	}
	check := func(what string, r apiResponse, etag, want string) {
		t.Helper()
		if r.status != 200 || r.header.Get("ETag") != etag {
			t.Fatalf("%s: %d ETag %s %s", what, r.status, r.header.Get("ETag"), r.body)
		}
		if got, w := withoutServerMeta(decode(t, r.body)), decode(t, []byte(want)); !jsonEqual(got, w) {
			t.Errorf("%s:\n got  %s\n want %s", what, toJSON(got), toJSON(w))
		}
		if read := c.do("GET", "/Patient/pp1", nil); string(read.body) != string(r.body) {
			t.Errorf("%s: the read answers another resource than the PATCH did:\n%s\n%s", what, read.body, r.body)
		}
	}

	ops := `[{"op":"test","path":"/active","value":false},{"op":"replace","path":"/active","value":true},
		{"op":"add","path":"/name/0/given/-","value":"B"},{"op":"remove","path":"/birthDate"},
		{"op":"copy","from":"/name/0","path":"/name/1"},{"op":"move","from":"/name/1/given/0","path":"/name/1/given/1"},
		{"op":"add","path":"/name/1/given/0","value":"C"},{"op":"test","path":"/name/1","value":{"given":["C","B","A"],"family":"Ng"}}]`
	r = c.do("PATCH", "/Patient/pp1", []byte(ops), "Content-Type", jp, "If-Match", `W/"1"`)
	check("JSON Patch", r, `W/"2"`, `{"resourceType":"Patient","identifier":[{"system":"urn:pp","value":"1"}],"active":true,"name":[{"family":"Ng","given":["A","B"]},{"family":"Ng","given":["C","B","A"]}]}`)
	if h := history(); h != "2 PATCH Patient/pp1 200; 1 PUT Patient/pp1 201" {
		t.Errorf("history after PATCH: %s", h)
	}

	fp := `{"resourceType":"Parameters","parameter":[
		{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":false}]},
		{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name[1]"}]},
		{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"birthDate"},{"name":"value","valueDate":"1980-02-03"}]},
		{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},
			{"name":"value","part":[{"name":"system","valueCode":"phone"},{"name":"value","valueString":"555"}]}]},
		{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueBoolean":false}]},
		{"name":"operation","part":[{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.given"},{"name":"index","valueInteger":0},{"name":"value","valueString":"Z"}]},
		{"name":"operation","part":[{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":2}]},
		{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.contact"}]}]}`
	r = c.do("PATCH", "/Patient/pp1", []byte(fp), "Content-Type", fj, "If-Match", `W/"2"`)
	check("FHIRPath Patch", r, `W/"3"`, `{"resourceType":"Patient","identifier":[{"system":"urn:pp","value":"1"}],"active":false,"name":[{"family":"Ng","given":["A","B","Z"]}],
		"birthDate":"1980-02-03","telecom":[{"system":"phone","value":"555"}],"deceasedBoolean":false}`)

	r = c.do("PATCH", "/Patient?identifier=urn:pp|1", []byte(`[{"op":"replace","path":"/active","value":true}]`), "Content-Type", jp)
	check("conditional PATCH", r, `W/"4"`, `{"resourceType":"Patient","identifier":[{"system":"urn:pp","value":"1"}],"active":true,"name":[{"family":"Ng","given":["A","B","Z"]}],
		"birthDate":"1980-02-03","telecom":[{"system":"phone","value":"555"}],"deceasedBoolean":false}`)

	before := history()
	c.do("PUT", "/Patient/gone", []byte(`{"resourceType":"Patient","id":"gone"}`))
	c.do("DELETE", "/Patient/gone", nil)
	fpOp := func(parts string) []byte {
		return []byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":true}]},{"name":"operation","part":[` + parts + `]}]}`)
	}
	for _, tc := range []struct {
		name, path, ct string
		body           string
		headers        []string
		status         int
		mention        string // in the diagnostics
	}{
		{"stale If-Match", "/Patient/pp1", jp, `[{"op":"replace","path":"/active","value":false}]`, []string{"If-Match", `W/"1"`}, 412, ""},
		{"failed test", "/Patient/pp1", jp, `[{"op":"replace","path":"/active","value":false},{"op":"test","path":"/active","value":true}]`, nil, 422, "operation 1 (test /active)"},
		{"missing path", "/Patient/pp1", jp, `[{"op":"remove","path":"/birthDate"},{"op":"remove","path":"/photo"}]`, nil, 422, "operation 1 (remove /photo)"},
		{"index past the end", "/Patient/pp1", jp, `[{"op":"add","path":"/name/5","value":{"family":"X"}}]`, nil, 422, "operation 0"},
		{"invalid result", "/Patient/pp1", jp, `[{"op":"replace","path":"/active","value":"yes"}]`, nil, 422, "Patient.active"},
		{"unknown element", "/Patient/pp1", jp, `[{"op":"add","path":"/colour","value":"red"}]`, nil, 422, "colour"},
		{"id changed", "/Patient/pp1", jp, `[{"op":"replace","path":"/id","value":"other"}]`, nil, 422, "id"},
		{"type changed", "/Patient/pp1", jp, `[{"op":"replace","path":"/resourceType","value":"Group"}]`, nil, 422, ""},
		{"root removed", "/Patient/pp1", jp, `[{"op":"remove","path":""}]`, nil, 422, "operation 0"},
		{"unknown op", "/Patient/pp1", jp, `[{"op":"replace","path":"/active","value":false},{"op":"frob","path":"/active"}]`, nil, 400, "operation 1"},
		{"no value", "/Patient/pp1", jp, `[{"op":"add","path":"/active"}]`, nil, 400, "operation 0"},
		{"bad pointer", "/Patient/pp1", jp, `[{"op":"remove","path":"active"}]`, nil, 400, "operation 0"},
		{"not an array", "/Patient/pp1", jp, `{"op":"remove","path":"/active"}`, nil, 400, ""},
		{"not JSON", "/Patient/pp1", jp, `[{"op":`, nil, 400, ""},
		{"FHIRPath: two targets", "/Patient/pp1", fj, string(fpOp(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.given"},{"name":"value","valueString":"Q"}`)), nil, 422, "operation 1"},
		{"FHIRPath: bad expression", "/Patient/pp1", fj, string(fpOp(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.("}`)), nil, 400, "operation 1"},
		{"FHIRPath: unknown type", "/Patient/pp1", fj, string(fpOp(`{"name":"type","valueCode":"upsert"},{"name":"path","valueString":"Patient"}`)), nil, 400, "operation 1"},
		{"FHIRPath: add exists", "/Patient/pp1", fj, string(fpOp(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"active"},{"name":"value","valueBoolean":true}`)), nil, 422, "operation 1"},
		{"FHIRPath: invalid result", "/Patient/pp1", fj, string(fpOp(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueString":"soon"}`)), nil, 422, "birthDate"},
		{"FHIRPath: not Parameters", "/Patient/pp1", fj, `{"resourceType":"Patient","active":true}`, nil, 400, ""},
		{"text body", "/Patient/pp1", "text/plain", `x`, nil, 415, ""},
		{"unknown resource", "/Patient/nobody", jp, `[{"op":"remove","path":"/active"}]`, nil, 404, ""},
		{"deleted resource", "/Patient/gone", jp, `[{"op":"remove","path":"/active"}]`, nil, 410, ""},
		{"conditional: no match", "/Patient?identifier=urn:pp|nobody", jp, `[{"op":"remove","path":"/active"}]`, nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			issues := assertOutcome(t, c.do("PATCH", tc.path, []byte(tc.body), append([]string{"Content-Type", tc.ct}, tc.headers...)...), tc.status)
			if d := diagnostics(issues); !strings.Contains(d, tc.mention) {
				t.Errorf("the outcome does not mention %q: %s", tc.mention, d)
			}
		})
	}
	if h := history(); h != before {
		t.Errorf("refused patches wrote versions:\n%s\nwas %s", h, before)
	}
}

// apiTestConditionalDelete: DELETE /Type?criteria deletes every match
// (the CapabilityStatement says "multiple") in one transaction, lists
// what it deleted, and refuses rather than deletes some when too many
// match.
func apiTestConditionalDelete(t *testing.T, c *apiClient) {
	obs := func(id, code string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"urn:cd","code":%q}]}}`, id, code)
	}
	for i, code := range []string{"x", "x", "y", "x"} {
		id := fmt.Sprintf("cd%d", i)
		if r := c.do("PUT", "/Observation/"+id, []byte(obs(id, code))); r.status != 201 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
	}
	r := c.do("DELETE", "/Observation?code=urn:cd|x", nil)
	issues := assertOutcome(t, r, http.StatusOK)
	if d := diagnostics(issues); len(issues) != 3 || !strings.Contains(d, "Observation/cd0") || !strings.Contains(d, "Observation/cd1") || !strings.Contains(d, "Observation/cd3") {
		t.Errorf("the answer does not list the three deletions: %s", d)
	}
	for id, status := range map[string]int{"cd0": 410, "cd1": 410, "cd2": 200, "cd3": 410} {
		if r := c.do("GET", "/Observation/"+id, nil); r.status != status {
			t.Errorf("GET Observation/%s after the delete: %d, want %d", id, r.status, status)
		}
	}
	if h := strings.Join(historyRequests(t, c, "/Observation/cd0/_history"), "; "); h != "2 DELETE Observation/cd0 204; 1 PUT Observation/cd0 201" {
		t.Errorf("history: %s", h)
	}
	issues = assertOutcome(t, c.do("DELETE", "/Observation?code=urn:cd|x", nil), http.StatusOK)
	if d := diagnostics(issues); !strings.Contains(d, "nothing was deleted") {
		t.Errorf("a delete matching nothing says: %s", d)
	}
	// Single, by identifier, answered minimally.
	c.do("PUT", "/Patient/cdp", []byte(`{"resourceType":"Patient","id":"cdp","identifier":[{"system":"urn:cd","value":"p"}]}`))
	if r := c.do("DELETE", "/Patient?identifier=urn:cd|p", nil, "Prefer", "return=minimal"); r.status != 204 {
		t.Errorf("conditional delete, return=minimal: %d %s", r.status, r.body)
	}
	if r := c.do("GET", "/Patient/cdp", nil); r.status != 410 {
		t.Errorf("GET after the conditional delete: %d", r.status)
	}

	// More matches than one delete takes: refused, nothing deleted.
	var entries []string
	for i := range 101 {
		entries = append(entries, fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Observation/many%d"}}`, obs(fmt.Sprintf("many%d", i), "z"), i))
	}
	if r := c.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`)); r.status != 200 {
		t.Fatalf("transaction: %d %.300s", r.status, r.body)
	}
	dump := c.dump(t)
	assertOutcome(t, c.do("DELETE", "/Observation?code=urn:cd|z", nil), http.StatusPreconditionFailed)
	assertOutcome(t, c.do("DELETE", "/Observation?code=urn:cd|y", nil, "If-Match", `W/"1"`), http.StatusBadRequest)
	assertOutcome(t, c.do("DELETE", "/Observation?colour=red", nil), http.StatusBadRequest)
	assertOutcome(t, c.do("DELETE", "/Observation?_count=5", nil), http.StatusBadRequest)
	if after := c.dump(t); after != dump {
		t.Error("refused conditional deletes changed the storage")
	}
	if r := c.do("GET", "/Observation?code=urn:cd|z&_summary=count", nil); !strings.Contains(string(r.body), `"total":101`) {
		t.Errorf("after the refused delete: %s", r.body)
	}

	// In a transaction: all or nothing with the other entries.
	tx := func(entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	del := func(criteria string) string {
		return `{"request":{"method":"DELETE","url":"Observation?` + criteria + `"}}`
	}
	put := `{"resource":` + obs("cdnew", "n") + `,"request":{"method":"PUT","url":"Observation/cdnew"}}`
	assertOutcome(t, c.do("POST", "/", tx(del("code=urn:cd|z"), put)), http.StatusPreconditionFailed)
	assertOutcome(t, c.do("POST", "/", tx(del("code=urn:cd|y"), `{"request":{"method":"DELETE","url":"Observation/cd2"}}`)), http.StatusBadRequest) // one resource twice
	if after := c.dump(t); after != dump {
		t.Error("refused transactions with conditional deletes changed the storage")
	}
	r = c.do("POST", "/", tx(del("code=urn:cd|y"), put))
	got := responseBundle(t, r, "transaction-response", 2)
	res0 := got[0]["response"].(map[string]any)
	if res0["status"] != "200 OK" || !strings.Contains(toJSON(res0["outcome"]), "deleted Observation/cd2") {
		t.Errorf("conditional delete entry: %v", res0)
	}
	if r := c.do("GET", "/Observation/cd2", nil); r.status != 410 {
		t.Errorf("cd2 after the transaction: %d", r.status)
	}
}

// apiTestDeepSearch: chains and _has nested past one level (bounded by
// max-search-chains links), and the reference :identifier modifier.
func apiTestDeepSearch(t *testing.T, c *apiClient) {
	for _, w := range []struct{ path, body string }{
		{"/Organization/dorg1", `{"resourceType":"Organization","id":"dorg1","name":"Acme Holdings"}`},
		{"/Organization/dorg2", `{"resourceType":"Organization","id":"dorg2","name":"Acme Clinic","partOf":{"reference":"Organization/dorg1"}}`},
		{"/Patient/dp1", `{"resourceType":"Patient","id":"dp1","managingOrganization":{"reference":"Organization/dorg2"}}`},
		{"/Patient/dp2", `{"resourceType":"Patient","id":"dp2"}`},
		{"/Patient/dp3", `{"resourceType":"Patient","id":"dp3","managingOrganization":{"reference":"Organization/dorg1"}}`},
		{"/Observation/do1", `{"resourceType":"Observation","id":"do1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/dp1"}}`},
		{"/Observation/do2", `{"resourceType":"Observation","id":"do2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/dp2"}}`},
		{"/Observation/do3", `{"resourceType":"Observation","id":"do3","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"urn:mrn","value":"77"}}}`},
		{"/Observation/do4", `{"resourceType":"Observation","id":"do4","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/dp3","identifier":{"system":"urn:mrn","value":"88"}}}`},
		{"/Practitioner/dpr1", `{"resourceType":"Practitioner","id":"dpr1","name":[{"family":"Ko"}]}`},
		{"/Provenance/dpv1", `{"resourceType":"Provenance","id":"dpv1","target":[{"reference":"Observation/do1"}],"recorded":"2026-01-01T00:00:00Z","agent":[{"who":{"reference":"Practitioner/dpr1"}}]}`},
	} {
		if r := c.do("PUT", w.path, []byte(w.body)); r.status != 201 {
			t.Fatalf("PUT %s: %d %s", w.path, r.status, r.body)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{"/Observation?subject:Patient.organization.partof.name=Acme%20Holdings", "Observation/do1"},
		{"/Observation?subject:Patient.organization.name=Acme&_sort=_id", "Observation/do1 Observation/do4"},
		{"/Observation?subject:Patient.organization.partof:Organization.name=Acme", "Observation/do1"},
		{"/Patient?_has:Observation:patient:_has:Provenance:target:agent=Practitioner/dpr1", "Patient/dp1"},
		{"/Patient?_has:Observation:patient:_has:Provenance:target:agent:Practitioner.name=Ko", "Patient/dp1"},
		{"/Organization?_has:Patient:organization:_has:Observation:subject:_id=do4", "Organization/dorg1"},
		{"/Organization?_has:Organization:partof:_has:Patient:organization:_id=dp1", "Organization/dorg1"},
		{"/Observation?subject:identifier=urn:mrn|77", "Observation/do3"},
		{"/Observation?subject:identifier=urn:mrn|88", "Observation/do4"},
		{"/Observation?subject:identifier=|88", ""}, // |code: no system
		{"/Observation?subject:identifier=88", "Observation/do4"},
		{"/Observation?patient:identifier=urn:mrn|88", "Observation/do4"},
		{"/Observation?subject:identifier=urn:mrn|77,urn:mrn|88&_sort=_id", "Observation/do3 Observation/do4"},
		{"/Observation?subject:identifier=urn:other|77", ""},
		{"/Provenance?target:Observation.subject:identifier=urn:mrn|77", ""},
		{"/Provenance?target:Observation.subject:Patient.organization:identifier=x", ""},
	} {
		got, _, _ := searchsetAll(t, c, tc.query)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("GET %s: %v, want %q", tc.query, got, tc.want)
		}
	}
	// Five links are past max-search-chains (4), however they are split.
	for _, q := range []string{
		"/Observation?subject:Patient.link:Patient.link:Patient.link:Patient.link:Patient.name=x",
		"/Patient?_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:_has:Provenance:target:agent:Practitioner.name=x",
		"/Observation?subject:Patient.organization.partof.name=x&subject:Patient.organization.name=y",
	} {
		issues := assertOutcome(t, c.do("GET", q, nil), http.StatusBadRequest)
		if d := diagnostics(issues); !strings.Contains(d, "max-search-chains") {
			t.Errorf("GET %s: %s", q, d)
		}
	}
}

// apiTestValidateModes: $validate with profile (a StructureDefinition
// stored on the server) and mode create, update and delete, each
// checking what the write it names would be refused for.
func apiTestValidateModes(t *testing.T, c *apiClient) {
	const profile = "http://example.org/fhir/StructureDefinition/vp-patient"
	sd := `{"resourceType":"StructureDefinition","id":"vp-patient","url":"` + profile + `","name":"VpPatient","status":"draft",
		"kind":"resource","abstract":false,"type":"Patient","derivation":"constraint","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient",
		"snapshot":{"element":[{"id":"Patient","path":"Patient","definition":"A patient.","min":0,"max":"*","base":{"path":"Patient","min":0,"max":"*"}},
		{"id":"Patient.birthDate","path":"Patient.birthDate","definition":"Date of birth, required here.","min":1,"max":"1",
		"base":{"path":"Patient.birthDate","min":0,"max":"1"},"type":[{"code":"date"}]}]}}`
	if r := c.do("PUT", "/StructureDefinition/vp-patient", []byte(sd)); r.status != 201 {
		t.Fatalf("PUT the profile: %d %s", r.status, r.body)
	}
	if r := c.do("PUT", "/Patient/vp1", []byte(`{"resourceType":"Patient","id":"vp1"}`)); r.status != 201 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	c.do("PUT", "/Patient/vpgone", []byte(`{"resourceType":"Patient","id":"vpgone"}`))
	c.do("DELETE", "/Patient/vpgone", nil)
	// With a narrative, so that no dom-6 warning ("a resource should have
	// narrative") comes before the answer the cases look at.
	pat := `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">A patient</div>"},`
	noBirth, withBirth := pat+`"id":"vp1"}`, pat+`"id":"vp1","birthDate":"1970"}`
	params := func(res string, extra ...string) string {
		ps := []string{`{"name":"resource","resource":` + res + `}`}
		for i := 0; i+1 < len(extra); i += 2 {
			ps = append(ps, `{"name":"`+extra[i]+`","valueCode":"`+extra[i+1]+`"}`)
		}
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
	}
	dump := c.dump(t)
	for _, tc := range []struct {
		name, path, body string
		severity         string // of the first issue; "" when the answer is an error status
		status           int
		mention          string
	}{
		{"profile: missing element", "/Patient/$validate?profile=" + profile, noBirth, "error", 200, "birthDate"},
		{"profile: valid", "/Patient/$validate?profile=" + profile, withBirth, "information", 200, profile},
		{"profile in Parameters", "/Patient/$validate", params(noBirth, "profile", profile), "error", 200, "birthDate"},
		{"profile: the base definition", "/Patient/$validate?profile=http://hl7.org/fhir/StructureDefinition/Patient", noBirth, "information", 200, ""},
		{"profile: unknown", "/Patient/$validate?profile=http://example.org/nope", withBirth, "", 400, "http://example.org/nope"},
		{"profile: URL and body disagree", "/Patient/$validate?profile=http://example.org/a", params(noBirth, "profile", profile), "", 400, "profile"},
		{"mode=profile without profile", "/Patient/$validate?mode=profile", noBirth, "", 400, "profile"},
		{"mode=create", "/Patient/$validate?mode=create", noBirth, "information", 200, "create would be accepted"},
		{"mode=create, invalid", "/Patient/$validate?mode=create", pat + `"gender":"often"}`, "error", 200, "gender"},
		{"mode=update", "/Patient/vp1/$validate?mode=update", noBirth, "information", 200, "update would be accepted"},
		{"mode=update, new id", "/Patient/vp2/$validate?mode=update", pat + `"id":"vp2"}`, "information", 200, "update"},
		{"mode=update, id mismatch", "/Patient/vp1/$validate?mode=update", pat + `"id":"other"}`, "error", 200, "other"},
		{"mode=update, id from the body", "/Patient/$validate?mode=update", withBirth, "information", 200, "update"},
		{"mode=update, no id", "/Patient/$validate?mode=update", `{"resourceType":"Patient"}`, "", 400, "id"},
		{"mode=update in Parameters with profile", "/Patient/vp1/$validate", params(noBirth, "mode", "update", "profile", profile), "error", 200, "birthDate"},
		{"mode=delete", "/Patient/vp1/$validate?mode=delete", "", "information", 200, "may be deleted"},
		{"mode=delete, unknown", "/Patient/nobody/$validate?mode=delete", "", "error", 200, "not found"},
		{"mode=delete, deleted", "/Patient/vpgone/$validate?mode=delete", "", "information", 200, "deleted already"},
		{"mode=delete without id", "/Patient/$validate?mode=delete", "", "", 400, "id"},
		{"mode=bogus", "/Patient/$validate?mode=bogus", noBirth, "", 400, "bogus"},
		{"unknown parameter", "/Patient/$validate?strict=true", noBirth, "", 400, "strict"},
		{"no resource", "/Patient/$validate?mode=create", "", "", 400, "resource"},
		{"unknown instance operation", "/Patient/vp1/$frob", noBirth, "", 405, "$validate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			issues := assertOutcome(t, c.do("POST", tc.path, body), tc.status)
			if tc.severity != "" && issues[0].(map[string]any)["severity"] != tc.severity {
				t.Errorf("first issue %v, want severity %s", issues[0], tc.severity)
			}
			if d := diagnostics(issues) + toJSON(issues); !strings.Contains(d, tc.mention) {
				t.Errorf("the outcome does not mention %q: %s", tc.mention, d)
			}
		})
	}
	if after := c.dump(t); after != dump {
		t.Error("$validate changed the storage")
	}
}

// apiTestBundlePatch: PATCH entries in transactions and batches, a JSON
// Patch as a Binary and a FHIRPath Patch as a Parameters; a transaction
// whose patch fails writes nothing.
func apiTestBundlePatch(t *testing.T, c *apiClient) {
	c.do("PUT", "/Patient/bp1", []byte(`{"resourceType":"Patient","id":"bp1","active":false}`))
	c.do("PUT", "/Patient/bp2", []byte(`{"resourceType":"Patient","id":"bp2","identifier":[{"system":"urn:bp","value":"2"}]}`))
	jsonPatch := func(doc string) string {
		return `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(doc)) + `"}`
	}
	fhirPath := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"other"}]}]}`
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":` + jsonPatch(`[{"op":"replace","path":"/active","value":true}]`) + `,"request":{"method":"PATCH","url":"Patient/bp1","ifMatch":"W/\"1\""}},
		{"resource":` + fhirPath + `,"request":{"method":"PATCH","url":"Patient?identifier=urn:bp|2"}}]}`
	r := c.do("POST", "/", []byte(tx))
	if r.status != 200 {
		t.Fatalf("transaction of patches: %d %s", r.status, r.body)
	}
	for id, want := range map[string]string{"bp1": `"active":true`, "bp2": `"gender":"other"`} {
		got := c.do("GET", "/Patient/"+id, nil)
		if !strings.Contains(string(got.body), want) || got.header.Get("ETag") != `W/"2"` {
			t.Errorf("Patient/%s after the transaction: %s %s", id, got.header.Get("ETag"), got.body)
		}
		if h := historyRequests(t, c, "/Patient/"+id+"/_history"); h[0] != "2 PATCH Patient/"+id+" 200" {
			t.Errorf("history of %s: %v", id, h)
		}
	}
	dump := c.dump(t)
	for name, tx := range map[string]string{
		"failed test": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient","id":"bp3"},"request":{"method":"PUT","url":"Patient/bp3"}},
			{"resource":` + jsonPatch(`[{"op":"test","path":"/active","value":false}]`) + `,"request":{"method":"PATCH","url":"Patient/bp1"}}]}`,
		"stale If-Match": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":` + fhirPath + `,"request":{"method":"PATCH","url":"Patient/bp1","ifMatch":"W/\"1\""}}]}`,
		"no match": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":` + fhirPath + `,"request":{"method":"PATCH","url":"Patient?identifier=urn:bp|none"}}]}`,
		"wrong content type": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Binary","contentType":"text/plain","data":"eA=="},"request":{"method":"PATCH","url":"Patient/bp1"}}]}`,
		"a Patient as patch": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient"},"request":{"method":"PATCH","url":"Patient/bp1"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if r := c.in(t).do("POST", "/", []byte(tx)); r.status < 400 {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	if after := c.dump(t); after != dump {
		t.Error("failed transactions of patches changed the storage")
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":` + jsonPatch(`[{"op":"test","path":"/active","value":false}]`) + `,"request":{"method":"PATCH","url":"Patient/bp1"}},
		{"resource":` + jsonPatch(`[{"op":"remove","path":"/gender"}]`) + `,"request":{"method":"PATCH","url":"Patient/bp2"}}]}`
	got := responseBundle(t, c.do("POST", "/", []byte(batch)), "batch-response", 2)
	if s0, s1 := entryStatus(got[0]), entryStatus(got[1]); !strings.HasPrefix(s0, "422") || !strings.HasPrefix(s1, "200") {
		t.Errorf("batch of patches: %s, %s; want 422, 200", s0, s1)
	}
}
