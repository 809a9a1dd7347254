package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// FuzzWithholding: whatever a caller sends as a read, search or history
// request, a gateway holding psychotherapy notes answers exactly as one
// that never held them (apart from server-made ids and timestamps), and
// no answer carries a byte of a note. Seeds are the attack shapes of the
// hardening issue; `go test -fuzz FuzzWithholding ./fhir/server` explores
// from there.
func FuzzWithholding(f *testing.F) {
	for _, seed := range []string{
		"DocumentReference?description=SEC", "DocumentReference?description:contains=ET-N",
		"DocumentReference?_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|PSYTHPN&_total=accurate",
		"DocumentReference?identifier=urn:notes|n1", "DocumentReference?_id=n1,n3,d2&_sort=-_lastUpdated",
		"DocumentReference?_sort=description&_count=1", "DocumentReference?_summary=count&subject=Patient/p",
		"Patient?_has:DocumentReference:subject:description=SECRET",
		"Patient?_has:DocumentReference:subject:_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|PSYTHPN",
		"Patient?_id=p&_revinclude=DocumentReference:subject&_revinclude:iterate=Provenance:target",
		"Provenance?target:DocumentReference.description=SECRET", "Provenance?_include=Provenance:target",
		"Patient/p/DocumentReference?_total=accurate", "Patient/p/$everything",
		"DocumentReference/n1", "DocumentReference/n3/_history", "DocumentReference/n1/_history/1",
		"DocumentReference/_history?_count=1", "_history?_since=2000-01-01",
		"DocumentReference?_lastUpdated=gt2000&_elements=description", "DocumentReference?_content=SECRET",
		// issue 13: $everything paging and filters, nested chains and
		// _has, :identifier.
		"Patient/p/$everything?_count=1", "Patient/p/$everything?_type=DocumentReference&_since=2000",
		"Provenance?target:DocumentReference.subject:Patient._has:DocumentReference:subject:description=SECRET",
		"Patient?_has:DocumentReference:subject:_has:Provenance:target:_id=pv", "DocumentReference?subject:identifier=urn:x|y",
	} {
		f.Add(seed)
	}
	with, without := withholdingWorld(f, true), withholdingWorld(f, false)
	f.Fuzz(func(t *testing.T, target string) {
		if strings.ContainsAny(target, " \n\r\t#") || strings.HasPrefix(target, "/") || strings.HasPrefix(target, "_cursor") {
			t.Skip() // not a request target a client could send as is
		}
		a, b := fuzzGet(with, "/"+target), fuzzGet(without, "/"+target)
		for _, m := range []string{"SECRET-NOTE-TEXT", "SECRET-GONE"} {
			if strings.Contains(a, m) {
				t.Fatalf("GET /%s discloses a note:\n%s", target, a)
			}
		}
		if a != b {
			t.Fatalf("GET /%s answers differently with notes:\n%s\nwithout:\n%s", target, a, b)
		}
	})
}

var (
	fuzzUUID    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	fuzzInstant = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})|\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT`)
	fuzzCursor  = regexp.MustCompile(`_cursor=[A-Za-z0-9_%-]+`)
)

// fuzzGet answers GET target as status, the version headers and the
// body, with server-made ids, timestamps and cursors blanked.
func fuzzGet(h http.Handler, target string) string {
	req, err := http.NewRequest(http.MethodGet, "http://kap.test"+target, nil)
	if err != nil {
		return "bad request target: " + err.Error()
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	s := http.StatusText(rec.Code) + "\nETag: " + rec.Header().Get("ETag") + "\nLast-Modified: " + rec.Header().Get("Last-Modified") + "\n" + rec.Body.String()
	s = fuzzUUID.ReplaceAllString(s, "<uuid>")
	s = fuzzInstant.ReplaceAllString(s, "<instant>")
	return fuzzCursor.ReplaceAllString(s, "_cursor=<cursor>")
}

// withholdingWorld is a gateway on a fresh in-memory store holding a
// patient, an ordinary document and a Provenance pointing at it and at
// n1, and, with notes, the note n1 and the deleted note n3. (The stores
// leave withheld resources out of their queries alike: fhirtest's
// disclosure suite holds each backend to it, and cmd/kapbridge
// TestPrivacyTable compares gateways on SQLite and PostgreSQL.)
func withholdingWorld(f *testing.F, notes bool) http.Handler {
	ctx := context.Background()
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, BaseURL: "http://kap.test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	put := func(path, body string) {
		req := httptest.NewRequest(http.MethodPut, "http://kap.test"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			f.Fatalf("PUT %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	const labels = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]}`
	put("/Patient/p", `{"resourceType":"Patient","id":"p","name":[{"family":"Rivera"}]}`)
	if notes {
		put("/DocumentReference/n1", `{"resourceType":"DocumentReference","id":"n1",`+labels+`,"identifier":[{"system":"urn:notes","value":"n1"}],"status":"current","subject":{"reference":"Patient/p"},"date":"2026-01-02T10:00:00Z","description":"SECRET-NOTE-TEXT of a session","content":[{"attachment":{"contentType":"text/plain","title":"SECRET-NOTE-TEXT"}}]}`)
		n3 := fhir.Key{Tenant: fhir.DefaultTenant, Type: "DocumentReference", ID: "n3"}
		if err := st.Update(ctx, func(tx fhir.Tx) error {
			if err := tx.Put(ctx, fhir.Version{Key: n3, VersionID: 1, JSON: []byte(`{"resourceType":"DocumentReference","id":"n3",` + labels + `,"status":"current","description":"SECRET-GONE"}`)}, fhir.Index{}); err != nil {
				return err
			}
			return tx.Put(ctx, fhir.Version{Key: n3, VersionID: 2, Deleted: true}, fhir.Index{})
		}); err != nil {
			f.Fatal(err)
		}
	}
	put("/DocumentReference/d2", `{"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p"},"date":"2026-01-03T10:00:00Z","description":"visit summary","content":[{"attachment":{"contentType":"text/plain"}}]}`)
	put("/Provenance/pv", `{"resourceType":"Provenance","id":"pv","target":[{"reference":"DocumentReference/d2"},{"reference":"DocumentReference/n1"}],"recorded":"2026-01-03T10:00:00Z","agent":[{"who":{"display":"therapist"}}]}`)
	return h
}
