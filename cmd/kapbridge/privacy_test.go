package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// TestPrivacyTable: psychotherapy notes, created through the FHIR API and
// through the practice API (and one deleted afterwards), are invisible to
// an unprivileged caller on every path: two gateways run side by side on
// the same kind of store, one holding the notes ("with") and one not
// ("without"), and every request of the table must get the same answer
// from both, apart from ids the server makes up and timestamps. Not one
// byte of a note may appear in any answer. The few writes whose target is
// a note by identity or id cannot be answered as for nothing (that would
// duplicate or overwrite the note): those must be refused with the
// generic 409, write nothing, and say nothing more.
//
// It runs on SQLite, and on PostgreSQL when KAPBRIDGE_TEST_POSTGRES_DSN is
// set (.ci/run sets it).
func TestPrivacyTable(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "kap.db") },
	}
	if dsn := os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN"); dsn != "" {
		stores["postgres"] = func(t *testing.T) string { return sqltest.FreshSchema(t, dsn) }
	} else {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half is skipped (.ci/run sets it)")
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) { runPrivacyTable(t, newStore) })
	}
}

// The note contents no answer may carry.
var noteMarkers = []string{"SECRET-FHIR-NOTE-7781", "kitchen of my childhood", "locked door", "numbness at work", "SECRET-DELETED-NOTE"}

const (
	securityPSYTHPN = "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSYTHPN"
	fhirNote        = `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"identifier":[{"system":"urn:kap:notes","value":"n1"}],"status":"current","subject":{"reference":"Patient/%s"},"description":"SECRET-FHIR-NOTE-7781 about the session","content":[{"attachment":{"contentType":"text/plain","title":"SECRET-FHIR-NOTE-7781"}}]}`
	deletedNote     = `{"resourceType":"DocumentReference","id":"n3","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"identifier":[{"system":"urn:kap:notes","value":"n3"}],"status":"current","subject":{"reference":"Patient/%s"},"description":"SECRET-DELETED-NOTE","content":[{"attachment":{"contentType":"text/plain"}}]}`
)

func runPrivacyTable(t *testing.T, newStore func(t *testing.T) string) {
	course, err := os.ReadFile(filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var withoutNotes bytes.Buffer
	for line := range strings.Lines(string(course)) {
		if !strings.Contains(line, `"kind": "note"`) {
			withoutNotes.WriteString(line)
		}
	}
	if withoutNotes.Len() == len(course) {
		t.Fatal("the course has no notes to leave out")
	}

	withStore, withoutStore := newStore(t), newStore(t)
	with, without := &gatewayProc{base: startServe(t, withStore, nil, nil)}, &gatewayProc{base: startServe(t, withoutStore, nil, nil)}
	with.postNDJSON(t, course)
	without.postNDJSON(t, withoutNotes.Bytes())

	// The patient the practice notes are about, and their ids and
	// identifiers, as an attacker who knows the mapping would derive them
	// (read here from the store itself).
	st, err := sqlstore.Open(t.Context(), withStore)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	notes := findNotes(t, st)
	if want := bytes.Count(course, []byte(`"kind": "note"`)); len(notes) != want {
		t.Fatalf("the practice API made %d notes, want %d", len(notes), want)
	}
	patient := notes[0].patient
	with.put(t, "/DocumentReference/n1", fmt.Sprintf(fhirNote, patient), http.StatusCreated)
	// A deleted note, written as the practice's own tools would.
	n3 := fhir.Key{Tenant: fhir.DefaultTenant, Type: "DocumentReference", ID: "n3"}
	if err := st.Update(t.Context(), func(tx fhir.Tx) error {
		if err := tx.Put(t.Context(), fhir.Version{Key: n3, VersionID: 1, JSON: fmt.Appendf(nil, deletedNote, patient)}, fhir.Index{}); err != nil {
			return err
		}
		return tx.Put(t.Context(), fhir.Version{Key: n3, VersionID: 2, Deleted: true}, fhir.Index{})
	}); err != nil {
		t.Fatal(err)
	}
	notes = append(notes, noteRef{id: "n1", identSystem: "urn:kap:notes", identValue: "n1"}, noteRef{id: "n3", identSystem: "urn:kap:notes", identValue: "n3"})

	type req struct {
		method, path string
		header       map[string]string
		body         string
	}
	get := func(path string) req { return req{method: http.MethodGet, path: path} }
	var reads []req
	for _, n := range notes {
		reads = append(reads,
			get("/DocumentReference/"+n.id),
			get("/DocumentReference/"+n.id+"/_history/1"),
			get("/DocumentReference/"+n.id+"/_history/2"),
			get("/DocumentReference/"+n.id+"/_history"),
			get("/DocumentReference?identifier="+url.QueryEscape(n.identSystem+"|"+n.identValue)),
			get("/DocumentReference?_id="+n.id),
			get("/DocumentReference?_id="+n.id+"&_total=accurate"),
			req{method: http.MethodDelete, path: "/DocumentReference/" + n.id},
			req{method: http.MethodPost, path: "/", body: fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c0e3a-0000-4000-8000-000000000001","resource":{"resourceType":"Provenance","target":[{"reference":"DocumentReference?identifier=%s"}],"recorded":"2026-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]},"request":{"method":"POST","url":"Provenance"}}]}`, url.QueryEscape(n.identSystem+"|"+n.identValue))},
		)
	}
	for _, q := range []string{
		"", "?_total=accurate", "?_summary=count", "?subject=Patient/" + patient, "?patient=" + patient + "&_total=accurate",
		"?_security=" + url.QueryEscape(securityPSYTHPN), "?_security=" + url.QueryEscape(securityPSYTHPN) + "&_summary=count",
		"?description=SECRET", "?description=SECRET-F&_total=accurate", "?description:contains=kitchen", "?_content=kitchen",
		"?_sort=description", "?_sort=-date&_count=1", "?_count=2&_total=accurate", "?_include=DocumentReference:subject",
		"?_lastUpdated=gt2000-01-01&_sort=_lastUpdated",
	} {
		reads = append(reads, get("/DocumentReference"+q))
	}
	reads = append(reads,
		get("/Patient?_has:DocumentReference:subject:description=SECRET"),
		get("/Patient?_has:DocumentReference:subject:_security="+url.QueryEscape(securityPSYTHPN)),
		get("/Patient?_has:DocumentReference:patient:_id="+notes[0].id),
		get("/Patient?_id="+patient+"&_revinclude=DocumentReference:subject"),
		get("/Patient?_id="+patient+"&_revinclude=Provenance:target&_revinclude=DocumentReference:patient"),
		get("/Encounter?_revinclude:iterate=DocumentReference:encounter&_revinclude:iterate=Provenance:target"),
		get("/Provenance"),
		get("/Provenance?_security="+url.QueryEscape(securityPSYTHPN)),
		get("/Provenance?target:DocumentReference.description=SECRET"),
		get("/Provenance?target:DocumentReference._security="+url.QueryEscape(securityPSYTHPN)),
		get("/Provenance?_include=Provenance:target"),
		// Chains and _has nested past one level, and :identifier, pass
		// through notes as through nothing.
		get("/Provenance?target:DocumentReference.subject:Patient._id="+patient),
		get("/Provenance?target:DocumentReference.subject:Patient._has:DocumentReference:subject:description=SECRET"),
		get("/Patient?_has:DocumentReference:subject:_has:Provenance:target:recorded=gt2000-01-01"),
		get("/Patient?_has:DocumentReference:subject:subject:Patient._id="+patient),
		get("/Patient?_has:Encounter:subject:_has:DocumentReference:encounter:_security="+url.QueryEscape(securityPSYTHPN)),
		get("/Encounter?_has:DocumentReference:encounter:subject:Patient._has:DocumentReference:subject:description=SECRET"),
		get("/DocumentReference?subject:Patient.identifier="+url.QueryEscape("urn:x|y")+"&_total=accurate"),
		get("/DocumentReference?subject:identifier="+url.QueryEscape("urn:x|y")),
		get("/Provenance?target:identifier=n1"),
		get("/Patient/"+patient+"/DocumentReference"),
		get("/Patient/"+patient+"/DocumentReference?_total=accurate"),
		get("/Patient/"+patient+"/Provenance"),
		get("/Patient/"+patient+"/$everything"),
		get("/Patient/"+patient+"/$everything?_count=3"),
		get("/Patient/"+patient+"/$everything?_type=DocumentReference"),
		get("/Patient/"+patient+"/$everything?_type=DocumentReference,Provenance&_count=1"),
		get("/Patient/"+patient+"/$everything?_since=2000-01-01&_type=DocumentReference"),
		get("/DocumentReference/_history"),
		get("/DocumentReference/_history?_count=1"),
		get("/Provenance/_history?_count=2"),
		get("/_history?_count=7"),
		get("/_history?_since=2000-01-01"),
		req{method: http.MethodPost, path: "/DocumentReference/_search", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "description=SECRET&_total=accurate"},
		req{method: http.MethodPost, path: "/", body: `{"resourceType":"Bundle","type":"batch","entry":[` +
			`{"request":{"method":"GET","url":"DocumentReference/n1"}},` +
			`{"request":{"method":"GET","url":"DocumentReference/n3/_history"}},` +
			`{"request":{"method":"GET","url":"DocumentReference?description=SECRET&_total=accurate"}},` +
			`{"request":{"method":"GET","url":"Patient?_has:DocumentReference:subject:_security=` + url.QueryEscape(securityPSYTHPN) + `"}},` +
			`{"request":{"method":"DELETE","url":"DocumentReference/n1"}}]}`},
		// $validate of a delete of a note: as of a resource that does not
		// exist; of a create naming a note's identifier: valid.
		req{method: http.MethodPost, path: "/DocumentReference/n1/$validate?mode=delete"},
		req{method: http.MethodPost, path: "/DocumentReference/n3/$validate?mode=delete"},
		req{method: http.MethodPost, path: "/DocumentReference/$validate?mode=create", body: `{"resourceType":"DocumentReference","status":"current","identifier":[{"system":"urn:kap:notes","value":"n1"}],"content":[{"attachment":{"contentType":"text/plain"}}]}`},
		// Writes that change both gateways alike: criteria that match only
		// notes by content are answered as if nothing matched.
		req{method: http.MethodPost, path: "/DocumentReference", header: map[string]string{"If-None-Exist": "description=SECRET"},
			body: fmt.Sprintf(`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/%s"},"description":"probe one","content":[{"attachment":{"contentType":"text/plain"}}]}`, patient)},
		req{method: http.MethodPost, path: "/DocumentReference", header: map[string]string{"If-None-Exist": "_security=" + url.QueryEscape(securityPSYTHPN)},
			body: `{"resourceType":"DocumentReference","status":"current","description":"probe two","content":[{"attachment":{"contentType":"text/plain"}}]}`},
		req{method: http.MethodPut, path: "/DocumentReference?description=SECRET-FHIR",
			body: `{"resourceType":"DocumentReference","status":"current","description":"probe three","content":[{"attachment":{"contentType":"text/plain"}}]}`},
		get("/DocumentReference?_total=accurate&_sort=description"),
		// A conditional patch whose criteria match only notes by content
		// matches nothing (404 on both).
		req{method: http.MethodPatch, path: "/DocumentReference?description=SECRET-FHIR", header: map[string]string{"Content-Type": "application/json-patch+json"},
			body: `[{"op":"replace","path":"/status","value":"superseded"}]`},
		req{method: http.MethodPatch, path: "/DocumentReference?_security=" + url.QueryEscape(securityPSYTHPN), header: map[string]string{"Content-Type": "application/fhir+json"},
			body: `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"DocumentReference.description"}]}]}`},
		// Conditional deletes whose criteria match notes by content or
		// label delete nothing of them and list nothing of them.
		req{method: http.MethodDelete, path: "/DocumentReference?description=SECRET"},
		req{method: http.MethodPost, path: "/", body: `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"DocumentReference?description=SECRET"}}]}`},
		req{method: http.MethodDelete, path: "/DocumentReference?_security=" + url.QueryEscape(securityPSYTHPN)},
		req{method: http.MethodDelete, path: "/DocumentReference?subject=Patient/" + patient + "&_security:not=" + url.QueryEscape("http://example.org|none"), header: map[string]string{"Prefer": "return=minimal"}},
		get("/DocumentReference?_total=accurate&_sort=description"), // ids differ between the two: sort by what does not
	)

	normalize := func(r answer) string {
		return fmt.Sprintf("%d\nETag: %s\nLocation: %s\nLast-Modified set: %v\nContent-Type: %s\n%s",
			r.status, r.header.Get("ETag"), normalizeText(r.header.Get("Location")), r.header.Get("Last-Modified") != "",
			r.header.Get("Content-Type"), normalizeText(string(r.body)))
	}
	for i, rq := range reads {
		name := fmt.Sprintf("%02d %s %s", i, rq.method, rq.path)
		a := with.do(t, rq.method, rq.path, rq.header, rq.body)
		b := without.do(t, rq.method, rq.path, rq.header, rq.body)
		checkNoNote(t, name, a)
		if na, nb := normalize(a), normalize(b); na != nb {
			t.Errorf("%s: the answers differ, so the note is observable:\nwith notes:\n%s\nwithout:\n%s", name, na, nb)
			continue
		}
		// Every page of a paged answer, too.
		for page := 1; page < 50; page++ {
			na, nb := nextLink(a.body), nextLink(b.body)
			if na == "" && nb == "" {
				break
			}
			if normalizeText(na) != normalizeText(nb) || na == "" || nb == "" {
				t.Errorf("%s: page %d links differ: %q / %q", name, page, na, nb)
				break
			}
			a, b = with.do(t, http.MethodGet, strings.TrimPrefix(na, with.base), nil, ""), without.do(t, http.MethodGet, strings.TrimPrefix(nb, without.base), nil, "")
			checkNoNote(t, name, a)
			if pa, pb := normalize(a), normalize(b); pa != pb {
				t.Errorf("%s: page %d differs:\nwith notes:\n%s\nwithout:\n%s", name, page, pa, pb)
				break
			}
		}
	}

	// Writes whose target is a note by identity (its identifier) or id:
	// refused with the generic 409, nothing written, nothing disclosed.
	for _, n := range notes[len(notes)-2:] { // n1 live, n3 deleted
		ident := url.QueryEscape(n.identSystem + "|" + n.identValue)
		probe := `{"resourceType":"DocumentReference","status":"current","identifier":[{"system":"` + n.identSystem + `","value":"` + n.identValue + `"}],"description":"probe","content":[{"attachment":{"contentType":"text/plain"}}]}`
		refusals := []req{
			{method: http.MethodPut, path: "/DocumentReference/" + n.id, body: strings.Replace(probe, `"status"`, `"id":"`+n.id+`","status"`, 1)},
			{method: http.MethodPut, path: "/DocumentReference/" + n.id, header: map[string]string{"If-Match": `W/"7"`}, body: strings.Replace(probe, `"status"`, `"id":"`+n.id+`","status"`, 1)},
		}
		if n.id == "n1" { // identifiers of a deleted resource match nothing
			refusals = append(refusals,
				req{method: http.MethodPost, path: "/DocumentReference", header: map[string]string{"If-None-Exist": "identifier=" + ident}, body: probe},
				req{method: http.MethodPost, path: "/DocumentReference", header: map[string]string{"If-None-Exist": "identifier=" + ident + "&description=zzz"}, body: probe},
				req{method: http.MethodPut, path: "/DocumentReference?identifier=" + ident, body: probe},
				req{method: http.MethodPut, path: "/DocumentReference?identifier=" + ident + "&status=current", body: probe},
				req{method: http.MethodPost, path: "/", body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + probe + `,"request":{"method":"POST","url":"DocumentReference","ifNoneExist":"identifier=` + ident + `"}}]}`},
				req{method: http.MethodPatch, path: "/DocumentReference?identifier=" + ident, header: map[string]string{"Content-Type": "application/json-patch+json"},
					body: `[{"op":"replace","path":"/status","value":"superseded"}]`},
				req{method: http.MethodDelete, path: "/DocumentReference?identifier=" + ident},
				req{method: http.MethodDelete, path: "/DocumentReference?identifier=" + ident + "&status=current"},
				req{method: http.MethodPost, path: "/", body: `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"DocumentReference?identifier=` + ident + `"}}]}`},
			)
		}
		// A patch of the note by id, in either format, with or without
		// If-Match: refused before anything of it (its version, its
		// content, whether a test would pass) is looked at.
		refusals = append(refusals,
			req{method: http.MethodPatch, path: "/DocumentReference/" + n.id, header: map[string]string{"Content-Type": "application/json-patch+json"},
				body: `[{"op":"test","path":"/description","value":"x"},{"op":"remove","path":"/description"}]`},
			req{method: http.MethodPatch, path: "/DocumentReference/" + n.id, header: map[string]string{"Content-Type": "application/json-patch+json", "If-Match": `W/"7"`},
				body: `[{"op":"remove","path":"/description"}]`},
			req{method: http.MethodPatch, path: "/DocumentReference/" + n.id, header: map[string]string{"Content-Type": "application/fhir+json"},
				body: `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"DocumentReference.description"}]}]}`},
			// In a transaction.
			req{method: http.MethodPost, path: "/", body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"DocumentReference.description"}]}]},"request":{"method":"PATCH","url":"DocumentReference/` + n.id + `"}}]}`},
			// $validate of an update of it: refused as the update would be.
			req{method: http.MethodPost, path: "/DocumentReference/" + n.id + "/$validate?mode=update", body: strings.Replace(probe, `"status"`, `"id":"`+n.id+`","status"`, 1)},
		)
		for _, rq := range refusals {
			name := fmt.Sprintf("refused %s %s %v", rq.method, rq.path, rq.header)
			before := countVersions(t, st)
			a := with.do(t, rq.method, rq.path, rq.header, rq.body)
			checkNoNote(t, name, a)
			if a.status != http.StatusConflict || !strings.Contains(string(a.body), "cannot be carried out for this caller") {
				t.Errorf("%s: %d %s; want the generic 409", name, a.status, a.body)
			}
			if strings.Contains(string(a.body), "PSYTHPN") || strings.Contains(string(a.body), "version") {
				t.Errorf("%s: the refusal says too much: %s", name, a.body)
			}
			if after := countVersions(t, st); after != before {
				t.Errorf("%s: %d versions written", name, after-before)
			}
		}
	}
}

// answer is one HTTP response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func checkNoNote(t *testing.T, name string, a answer) {
	t.Helper()
	for _, m := range noteMarkers {
		if bytes.Contains(a.body, []byte(m)) {
			t.Errorf("%s: the answer carries note content %q: %s", name, m, a.body)
		}
	}
}

var (
	uuidRE    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	instantRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	cursorRE  = regexp.MustCompile(`_cursor=[A-Za-z0-9_%-]+`)
	baseRE    = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
)

// normalizeText blanks what differs between two gateways whatever they
// hold: server-made ids, timestamps, paging cursors (their snapshot) and
// the base URL's port.
func normalizeText(s string) string {
	s = baseRE.ReplaceAllString(s, "<base>")
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	s = instantRE.ReplaceAllString(s, "<instant>")
	return cursorRE.ReplaceAllString(s, "_cursor=<cursor>")
}

var nextRE = regexp.MustCompile(`"relation":"next","url":"([^"]+)"`)

func nextLink(body []byte) string {
	m := nextRE.FindSubmatch(body)
	if m == nil {
		return ""
	}
	return string(m[1])
}

type noteRef struct {
	id, patient             string
	identSystem, identValue string
}

// findNotes returns the live psychotherapy notes in st.
func findNotes(t *testing.T, st fhir.Store) []noteRef {
	t.Helper()
	ss := st.(interface {
		Search(context.Context, string, *search.Query, *search.Cursor) (search.Result, error)
	})
	res, err := ss.Search(t.Context(), fhir.DefaultTenant, &search.Query{Type: "DocumentReference", Count: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []noteRef
	for _, v := range res.Matches {
		if v.Sensitivity&fhir.PsychotherapyNote == 0 {
			continue
		}
		root, err := fhir.ParseJSON(v.JSON, fhir.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		n := noteRef{id: v.ID, patient: strings.TrimPrefix(root.Get("subject").GetString("reference"), "Patient/")}
		if ids := root.Get("identifier"); ids != nil && len(ids.Array) > 0 {
			n.identSystem, n.identValue = ids.Array[0].GetString("system"), ids.Array[0].GetString("value")
		}
		if n.identValue == "" || n.patient == "" {
			t.Fatalf("note %s has no identifier or subject: %s", v.ID, v.JSON)
		}
		out = append(out, n)
	}
	return out
}

// countVersions counts every version in the store (a refused write must
// leave it unchanged).
func countVersions(t *testing.T, st fhir.Store) int {
	t.Helper()
	ss := st.(interface {
		HistoryPage(context.Context, string, search.HistoryQuery) (search.HistoryResult, error)
	})
	n := 0
	q := search.HistoryQuery{Count: 1000}
	for {
		res, err := ss.HistoryPage(t.Context(), fhir.DefaultTenant, q)
		if err != nil {
			t.Fatal(err)
		}
		n += len(res.Versions)
		if res.Next == nil {
			return n
		}
		q.Cursor = res.Next
	}
}

// gatewayProc is a `kapbridge serve` started through run, on a loopback port.
type gatewayProc struct {
	base string
}

func (g *gatewayProc) do(t *testing.T, method, path string, header map[string]string, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (g *gatewayProc) put(t *testing.T, path, body string, want int) {
	t.Helper()
	if a := g.do(t, http.MethodPut, path, nil, body); a.status != want {
		t.Fatalf("PUT %s: %d %s", path, a.status, a.body)
	}
}

// postNDJSON posts practice records; every one must map.
func (g *gatewayProc) postNDJSON(t *testing.T, records []byte) {
	t.Helper()
	a := g.do(t, http.MethodPost, "/practice/v1/records", map[string]string{"Content-Type": "application/x-ndjson"}, string(records))
	if a.status != http.StatusOK {
		t.Fatalf("practice API: %d %s", a.status, a.body)
	}
	if !bytes.Contains(a.body, []byte(`"pending":0,"rejected":0`)) {
		t.Fatalf("practice API did not map every record: %s", a.body)
	}
}
