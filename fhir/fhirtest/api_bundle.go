package fhirtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// Batch and transaction Bundles at POST /.

type entryJSON = map[string]any

// txBundle builds a Bundle of kind from entries.
func txBundle(t testing.TB, kind string, entries ...entryJSON) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": kind, "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// req makes an entry: method and url, then optionally a resource (a JSON
// string or a map) and further request fields as name, value pairs
// ("fullUrl" goes on the entry).
func req(method, url string, resource any, fields ...string) entryJSON {
	r := map[string]any{"method": method, "url": url}
	e := entryJSON{"request": r}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "fullUrl" {
			e["fullUrl"] = fields[i+1]
		} else {
			r[fields[i]] = fields[i+1]
		}
	}
	switch res := resource.(type) {
	case nil:
	case string:
		e["resource"] = json.RawMessage(res)
	case []byte:
		e["resource"] = json.RawMessage(res)
	default:
		e["resource"] = res
	}
	return e
}

// responseBundle checks that r is a 200 Bundle of kind that passes the
// validator, with n entries, and returns the entries.
func responseBundle(t *testing.T, r apiResponse, kind string, n int) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %.800s", r.status, r.body)
	}
	if _, rt, err := fhir.ParseResource(r.body); err != nil || rt != "Bundle" {
		t.Fatalf("the %s Bundle does not pass the validator: %v\n%.800s", kind, err, r.body)
	}
	m := decode(t, r.body)
	if m["type"] != kind {
		t.Fatalf("Bundle.type %v, want %s", m["type"], kind)
	}
	out := entriesOf(m)
	if len(out) != n {
		t.Fatalf("%d response entries, want %d", len(out), n)
	}
	return out
}

func entryStatus(e map[string]any) string {
	r, _ := e["response"].(map[string]any)
	s, _ := r["status"].(string)
	return s
}

// createPatient creates a Patient with an identifier and returns its id.
func createPatient(t *testing.T, c *apiClient, ident, family string) string {
	t.Helper()
	r := c.do("POST", "/Patient", apiPatient(ident, family))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	return idOf(r.body)
}

// refusedUnchanged checks a refused transaction: status, an issue whose
// expression starts with each of exprs, and the store as before.
func refusedUnchanged(t *testing.T, c *apiClient, r apiResponse, status int, before string, exprs ...string) {
	t.Helper()
	x := issueExpressions(assertOutcome(t, r, status))
	for _, want := range exprs {
		if !containsPrefix(x, want) {
			t.Errorf("issues name %v, want %s", x, want)
		}
	}
	if c.dump(t) != before {
		t.Errorf("the refused transaction changed the store")
	}
}

const observationJSON = `{"resourceType":"Observation","status":"final","code":{"text":"%s"}}`

// apiTestTransactionAtomic: a transaction of 50 entries whose 40th fails
// leaves the store byte-for-byte as it was, whether the 40th entry fails
// validation or fails while the first 39 have already been written
// inside the transaction.
func apiTestTransactionAtomic(t *testing.T, c *apiClient) {
	// Seed resources for the transaction to update and delete.
	var ids []string
	for i := range 12 {
		ids = append(ids, createPatient(t, c, fmt.Sprint("seed-", i), "Seed"))
	}
	// entries builds the 50 entries; bad is the 40th (index 39).
	entries := func(bad entryJSON) []entryJSON {
		var es []entryJSON
		for i := range 10 {
			es = append(es, req("DELETE", "Patient/"+ids[i], nil))
		}
		for i := range 27 {
			es = append(es, req("POST", "Observation", fmt.Sprintf(observationJSON, fmt.Sprint("obs-", i)),
				"fullUrl", fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i)))
		}
		es = append(es, req("PUT", "Patient/"+ids[10], fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true}`, ids[10]), "ifMatch", `W/"1"`))
		es = append(es, req("PUT", "Patient/new-by-put", `{"resourceType":"Patient","id":"new-by-put"}`))
		es = append(es, bad)
		for i := range 10 {
			es = append(es, req("POST", "Patient", apiPatient(fmt.Sprint("tx-", i), "Tx"), "ifNoneExist", fmt.Sprintf("identifier=urn:kap:test|tx-%d", i)))
		}
		return es
	}
	before := c.dump(t)
	for _, tc := range []struct {
		name   string
		bad    entryJSON
		status int
		expr   string
	}{
		// Fails while the transaction is writing: a stale If-Match.
		{"if-match", req("PUT", "Patient/"+ids[11], fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, ids[11]), "ifMatch", `W/"7"`), 412, "Bundle.entry[39]"},
		// Fails validation: an Observation without status.
		{"invalid", req("POST", "Observation", `{"resourceType":"Observation","status":"finished","code":{"text":"x"}}`), 400, "Bundle.entry[39].resource.status"},
		// Fails in processing order after every DELETE and POST.
		{"delete-missing", req("DELETE", "Patient/never-was", nil), 404, "Bundle.entry[39]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			es := entries(tc.bad)
			if len(es) != 50 {
				t.Fatalf("%d entries", len(es))
			}
			refusedUnchanged(t, c, c.do("POST", "/", txBundle(t, "transaction", es...)), tc.status, before, tc.expr)
		})
	}

	// The same transaction with a good 40th entry commits whole.
	r := c.do("POST", "/", txBundle(t, "transaction", entries(req("PUT", "Patient/"+ids[11], fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, ids[11]), "ifMatch", `W/"1"`))...))
	got := responseBundle(t, r, "transaction-response", 50)
	want := func(i int) string {
		switch {
		case i < 10:
			return "204 No Content"
		case i < 37, i == 38, i >= 40:
			return "201 Created"
		}
		return "200 OK"
	}
	for i, e := range got {
		if s := entryStatus(e); s != want(i) {
			t.Errorf("entry %d: status %q, want %q", i, s, want(i))
		}
	}
	if before != "" && c.dump(t) == before {
		t.Error("the committed transaction left the store unchanged")
	}
	assertOutcome(t, c.do("GET", "/Patient/"+ids[0], nil), http.StatusGone)
}

// apiTestTransactionReferences: a Patient and 99 Observations in
// shuffled order; every reference to the Patient's urn:uuid fullUrl,
// also inside contained resources and extensions, becomes Patient/{id}.
func apiTestTransactionReferences(t *testing.T, c *apiClient) {
	const pURL = "urn:uuid:8a9b2a5e-2f3c-4c51-9a0e-0d6c0a0b1c2d"
	es := []entryJSON{req("POST", "Patient", apiPatient("ref-1", "Ref"), "fullUrl", pURL)}
	for i := range 99 {
		obs := map[string]any{
			"resourceType": "Observation", "status": "final", "code": map[string]any{"text": fmt.Sprint("o", i)},
			"subject": map[string]any{"reference": pURL},
			"contained": []any{map[string]any{"resourceType": "Specimen", "id": "s1",
				"subject": map[string]any{"reference": pURL}}},
			"specimen": map[string]any{"reference": "#s1"},
			"extension": []any{map[string]any{"url": "http://example.org/fhir/StructureDefinition/about",
				"valueReference": map[string]any{"reference": pURL}}},
		}
		if i%10 == 0 {
			// A reference between Observations too.
			obs["hasMember"] = []any{map[string]any{"reference": fmt.Sprintf("urn:uuid:11111111-0000-4000-8000-%012d", i+1)}}
		}
		es = append(es, req("POST", "Observation", obs, "fullUrl", fmt.Sprintf("urn:uuid:11111111-0000-4000-8000-%012d", i)))
	}
	rand.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	got := responseBundle(t, c.do("POST", "/", txBundle(t, "transaction", es...)), "transaction-response", 100)

	// Request order is kept: map each response to its request's fullUrl.
	idOfURL := map[string]string{}
	for i, e := range got {
		resp := e["response"].(map[string]any)
		if entryStatus(e) != "201 Created" || !strings.Contains(resp["location"].(string), "/_history/1") ||
			resp["etag"] != `W/"1"` || resp["lastModified"] == nil {
			t.Fatalf("entry %d: response %v", i, resp)
		}
		idOfURL[es[i]["fullUrl"].(string)] = resourceKey(e["resource"])
	}
	pRef := idOfURL[pURL]
	if !strings.HasPrefix(pRef, "Patient/") {
		t.Fatalf("the Patient entry answered %q", pRef)
	}
	for i, e := range got {
		key := resourceKey(e["resource"])
		if !strings.HasPrefix(key, "Observation/") {
			continue
		}
		// Read back what was stored, not only what was answered.
		stored := decode(t, c.do("GET", "/"+key, nil).body)
		refs := []any{
			stored["subject"].(map[string]any)["reference"],
			stored["contained"].([]any)[0].(map[string]any)["subject"].(map[string]any)["reference"],
			stored["extension"].([]any)[0].(map[string]any)["valueReference"].(map[string]any)["reference"],
		}
		for _, ref := range refs {
			if ref != pRef {
				t.Fatalf("entry %d: reference %v, want %s", i, ref, pRef)
			}
		}
		if stored["specimen"].(map[string]any)["reference"] != "#s1" {
			t.Errorf("entry %d: the local reference #s1 changed", i)
		}
		if hm, ok := stored["hasMember"].([]any); ok {
			fu := es[i]["fullUrl"].(string)
			var n int
			fmt.Sscanf(fu[len(fu)-12:], "%d", &n)
			want := idOfURL[fmt.Sprintf("urn:uuid:11111111-0000-4000-8000-%012d", n+1)]
			if got := hm[0].(map[string]any)["reference"]; got != want {
				t.Errorf("entry %d: hasMember %v, want %s", i, got, want)
			}
		}
	}
}

// apiTestBatchMixed: in a batch each entry stands alone; failures answer
// with their own status and OperationOutcome, the rest land.
func apiTestBatchMixed(t *testing.T, c *apiClient) {
	id := createPatient(t, c, "b-1", "Existing")
	es := []entryJSON{
		req("POST", "Patient", `{"resourceType":"Patient","favouriteColour":"blue"}`),                        // 0: invalid resource
		req("POST", "Spaceship", `{"resourceType":"Patient"}`),                                               // 1: unknown type
		req("GET", "Patient/does-not-exist", nil),                                                            // 2: 404 read
		req("PUT", "Patient/"+id, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id), "ifMatch", `W/"9"`), // 3: If-Match mismatch
		req("POST", "Patient", apiPatient("b-2", "Good"), "fullUrl", "urn:uuid:not-rewritten"),               // 4: good create
		req("GET", "Patient/"+id, nil),                                                                       // 5: good read
		req("PATCH", "Patient/"+id, nil),                                                                     // 6: no patch
		req("GET", "Spaceship/1", nil),                                                                       // 7: unknown type read
	}
	got := responseBundle(t, c.do("POST", "/", txBundle(t, "batch", es...)), "batch-response", len(es))
	want := []string{"400 Bad Request", "404 Not Found", "404 Not Found", "412 Precondition Failed", "201 Created", "200 OK", "400 Bad Request", "404 Not Found"}
	for i, e := range got {
		if s := entryStatus(e); s != want[i] {
			t.Errorf("entry %d: status %q, want %q (%v)", i, s, want[i], e)
		}
		if strings.HasPrefix(want[i], "4") {
			oc, _ := e["response"].(map[string]any)["outcome"].(map[string]any)
			if oc["resourceType"] != "OperationOutcome" {
				t.Errorf("entry %d: failed without an OperationOutcome: %v", i, e)
			}
		}
	}
	if exprs := issueExpressions(got[0]["response"].(map[string]any)["outcome"].(map[string]any)["issue"].([]any)); !containsPrefix(exprs, "Bundle.entry[0].resource.favouriteColour") {
		t.Errorf("the invalid resource's issue names %v", exprs)
	}
	if r := c.do("GET", "/"+resourceKey(got[4]["resource"]), nil); r.status != 200 {
		t.Errorf("the good create did not land: %d", r.status)
	}
	if got[5]["resource"].(map[string]any)["id"] != id {
		t.Errorf("the good read answered %v", got[5]["resource"])
	}
	if r := c.do("GET", "/Patient/"+id, nil); r.header.Get("ETag") != `W/"1"` {
		t.Errorf("the stale update changed the resource: %s", r.header.Get("ETag"))
	}

	// A large batch (its entries may run concurrently): every tenth entry
	// fails alone, each response stays in its request slot.
	es = nil
	for i := range 200 {
		status := "final"
		if i%10 == 0 {
			status = "done"
		}
		es = append(es, req("POST", "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":%q,"code":{"text":"n%d"}}`, status, i)))
	}
	got = responseBundle(t, c.do("POST", "/", txBundle(t, "batch", es...)), "batch-response", 200)
	for i, e := range got {
		want := "201 Created"
		if i%10 == 0 {
			want = "400 Bad Request"
		} else if txt := e["resource"].(map[string]any)["code"].(map[string]any)["text"]; txt != fmt.Sprint("n", i) {
			t.Errorf("entry %d answered the resource of another entry: %v", i, txt)
		}
		if s := entryStatus(e); s != want {
			t.Errorf("entry %d: %s, want %s", i, s, want)
		}
	}
}

// apiTestTransactionConditional: ifNoneExist matching an existing
// resource writes nothing and points references at it; conditional PUT
// updates the match; a failed ifMatch fails the whole transaction with
// 412.
func apiTestTransactionConditional(t *testing.T, c *apiClient) {
	pid := createPatient(t, c, "c-1", "Existing")
	qid := createPatient(t, c, "c-2", "Other")
	const pURL = "urn:uuid:2b0e7a4e-7a0c-4b9a-8d2f-6a3f0c1e9d11"
	got := responseBundle(t, c.do("POST", "/", txBundle(t, "transaction",
		req("POST", "Patient", apiPatient("c-1", "Ignored"), "fullUrl", pURL, "ifNoneExist", "identifier=urn:kap:test|c-1"),
		req("POST", "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}}`, pURL)),
		req("PUT", "Patient?identifier=urn:kap:test|c-2", apiPatient("c-2", "Updated")),
	)), "transaction-response", 3)
	if s := entryStatus(got[0]); s != "200 OK" || got[0]["resource"].(map[string]any)["id"] != pid {
		t.Errorf("conditional create: %s %v", s, got[0]["resource"])
	}
	if ref := got[1]["resource"].(map[string]any)["subject"].(map[string]any)["reference"]; ref != "Patient/"+pid {
		t.Errorf("reference to the matched Patient: %v", ref)
	}
	if s := entryStatus(got[2]); s != "200 OK" || got[2]["resource"].(map[string]any)["id"] != qid {
		t.Errorf("conditional update: %s %v", s, got[2]["resource"])
	}
	h := decode(t, c.do("GET", "/Patient/"+pid+"/_history", nil).body)
	if n := len(h["entry"].([]any)); n != 1 {
		t.Errorf("the matched Patient has %d versions, want 1 (nothing written)", n)
	}

	// A stale ifMatch anywhere fails everything with 412.
	r := c.do("POST", "/", txBundle(t, "transaction",
		req("POST", "Patient", apiPatient("c-3", "New")),
		req("PUT", "Patient/"+pid, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pid), "ifMatch", `W/"5"`),
	))
	if x := issueExpressions(assertOutcome(t, r, http.StatusPreconditionFailed)); !containsPrefix(x, "Bundle.entry[1]") {
		t.Errorf("412 issues name %v", x)
	}
	if r := c.do("POST", "/", txBundle(t, "transaction", req("GET", "Patient/"+pid, nil))); r.status != 200 {
		t.Fatal(r.status)
	}
	// c-3 was not created: a conditional create for it creates now.
	r = c.do("POST", "/Patient", apiPatient("c-3", "New"), "If-None-Exist", "identifier=urn:kap:test|c-3")
	if r.status != 201 {
		t.Errorf("the failed transaction left c-3 behind: %d", r.status)
	}
}

// apiTestTransactionConditionalReferences: a reference Type?criteria in a
// transaction becomes Type/id of the one resource matching, whether it
// existed before or is created by the same transaction; no match fails
// the transaction, names the reference and writes nothing.
func apiTestTransactionConditionalReferences(t *testing.T, c *apiClient) {
	pid := createPatient(t, c, "cr-1", "Known")
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q},"performer":[{"reference":"Practitioner?identifier=urn:kap:staff|pr-1"}]}`
	got := responseBundle(t, c.do("POST", "/", txBundle(t, "transaction",
		req("POST", "Observation", fmt.Sprintf(obs, "Patient?identifier=urn:kap:test|cr-1")),
		req("POST", "Practitioner", `{"resourceType":"Practitioner","identifier":[{"system":"urn:kap:staff","value":"pr-1"}]}`),
	)), "transaction-response", 2)
	o := got[0]["resource"].(map[string]any)
	if ref := o["subject"].(map[string]any)["reference"]; ref != "Patient/"+pid {
		t.Errorf("subject: %v, want Patient/%s", ref, pid)
	}
	prid := got[1]["resource"].(map[string]any)["id"].(string)
	if ref := o["performer"].([]any)[0].(map[string]any)["reference"]; ref != "Practitioner/"+prid {
		t.Errorf("performer: %v, want the Practitioner created by the same transaction, Practitioner/%s", ref, prid)
	}

	before := c.dump(t)
	r := c.do("POST", "/", txBundle(t, "transaction",
		req("POST", "Patient", apiPatient("cr-2", "New")),
		req("POST", "Observation", fmt.Sprintf(obs, "Patient?identifier=urn:kap:test|nobody")),
	))
	refusedUnchanged(t, c, r, http.StatusNotFound, before, "Bundle.entry[1].resource.subject.reference")
}

// apiTestTransactionDuplicates: two entries for one resource are a 400,
// whether they name it by id, by fullUrl, or by resolving to it.
func apiTestTransactionDuplicates(t *testing.T, c *apiClient) {
	pid := createPatient(t, c, "d-1", "D")
	before := c.dump(t)
	body := fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pid)
	for name, es := range map[string][]entryJSON{
		"same id": {req("PUT", "Patient/"+pid, body), req("DELETE", "Patient/"+pid, nil)},
		"same fullUrl": {req("POST", "Patient", apiPatient("d-2", "A"), "fullUrl", "urn:uuid:3c1d0f8e-1111-4aaa-8bbb-000000000001"),
			req("POST", "Patient", apiPatient("d-3", "B"), "fullUrl", "urn:uuid:3c1d0f8e-1111-4aaa-8bbb-000000000001")},
		"two conditional creates": {req("POST", "Patient", apiPatient("d-1", "A"), "ifNoneExist", "identifier=urn:kap:test|d-1"),
			req("POST", "Patient", apiPatient("d-1", "B"), "ifNoneExist", "identifier=urn:kap:test|d-1")},
		"conditional update and id": {req("PUT", "Patient?identifier=urn:kap:test|d-1", apiPatient("d-1", "A")), req("PUT", "Patient/"+pid, body)},
	} {
		t.Run(name, func(t *testing.T) {
			c := c.in(t)
			want := []string{"Bundle.entry[1]", "Bundle.entry[0]"}
			if name == "same fullUrl" {
				// R4's bdl-7 (fullUrl unique) refuses it as the Bundle's
				// invariant, before the entries are looked at.
				want = []string{"Bundle"}
			}
			refusedUnchanged(t, c, c.do("POST", "/", txBundle(t, "transaction", es...)), http.StatusBadRequest, before, want...)
		})
	}
}

// apiTestBundleRefused: what POST / does not process is a 400 naming why.
func apiTestBundleRefused(t *testing.T, c *apiClient) {
	for name, tc := range map[string]struct {
		body   string
		status int
		expr   string
	}{
		"collection":      {`{"resourceType":"Bundle","type":"collection"}`, 400, "Bundle.type"},
		"no type":         {`{"resourceType":"Bundle"}`, 400, "Bundle.type"},
		"not a Bundle":    {`{"resourceType":"Patient"}`, 400, "resourceType"},
		"broken JSON":     {`{"resourceType":"Bundle",`, 400, ""},
		"no request":      {`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"}}]}`, 400, "Bundle.entry[0]"},
		"no resource":     {`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"}}]}`, 400, "Bundle.entry[0].resource"},
		"patch, no patch": {`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PATCH","url":"Patient/1"}}]}`, 400, "Bundle.entry[0]"},
		"type mismatch":   {`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Observation"}}]}`, 400, "Bundle.entry[0].resource.resourceType"},
		"foreign server":  {`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"http://elsewhere.example/Patient/1"}}]}`, 400, "Bundle.entry[0].request.url"},
		"bad method":      {`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"FETCH","url":"Patient/1"}}]}`, 400, "Bundle.entry[0]"},
	} {
		issues := assertOutcome(t, c.do("POST", "/", []byte(tc.body)), tc.status)
		if tc.expr != "" && !containsPrefix(issueExpressions(issues), tc.expr) {
			t.Errorf("%s: issues name %v, want %s", name, issueExpressions(issues), tc.expr)
		}
	}
	// An empty transaction is fine, and so is its empty response.
	responseBundle(t, c.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"transaction"}`)), "transaction-response", 0)
}

// apiTestTransactionPreferAndGet: return=minimal leaves resources out; a
// GET entry runs after the writes and sees them; the response validates.
func apiTestTransactionPreferAndGet(t *testing.T, c *apiClient) {
	es := []entryJSON{
		req("GET", "Patient/fixed-1", nil),
		req("PUT", "Patient/fixed-1", `{"resourceType":"Patient","id":"fixed-1","active":true}`),
		req("GET", "metadata", nil),
	}
	got := responseBundle(t, c.do("POST", "/", txBundle(t, "transaction", es...), "Prefer", "return=minimal"), "transaction-response", 3)
	if entryStatus(got[0]) != "200 OK" || got[0]["resource"].(map[string]any)["id"] != "fixed-1" {
		t.Errorf("the GET did not see the PUT: %v", got[0])
	}
	if entryStatus(got[1]) != "201 Created" || got[1]["resource"] != nil || got[1]["response"].(map[string]any)["location"] == nil {
		t.Errorf("PUT with return=minimal: %v", got[1])
	}
	if got[2]["resource"].(map[string]any)["resourceType"] != "CapabilityStatement" {
		t.Errorf("GET metadata: %v", got[2])
	}
}

// apiTestTransaction1000: a 1,000-entry transaction commits (its speed is
// measured in adapters/sqlstore BenchmarkTransaction1000).
func apiTestTransaction1000(t *testing.T, c *apiClient) {
	body := ThousandEntryTransaction(t)
	start := time.Now()
	r := c.do("POST", "/", body)
	t.Logf("1,000-entry transaction: %v", time.Since(start))
	got := responseBundle(t, r, "transaction-response", 1000)
	subj := got[0]["resource"].(map[string]any)["id"]
	if ref := got[999]["resource"].(map[string]any)["subject"].(map[string]any)["reference"]; ref != "Patient/"+subj.(string) {
		t.Errorf("last Observation refers to %v", ref)
	}
}

// ThousandEntryTransaction is a transaction of 1 Patient and 999
// Observations referring to it by urn:uuid.
func ThousandEntryTransaction(t testing.TB) []byte {
	const pURL = "urn:uuid:5f0c8f8e-0c2e-4d8e-9f51-4f6e1b7f0001"
	es := []entryJSON{req("POST", "Patient", apiPatient("thousand", "Many"), "fullUrl", pURL)}
	for i := range 999 {
		es = append(es, req("POST", "Observation", fmt.Sprintf(
			`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":%q},"effectiveDateTime":"2024-01-01T10:00:00Z","valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
			pURL, 60+i%40)))
	}
	return txBundle(t, "transaction", es...)
}
