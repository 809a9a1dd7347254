package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// historyAll walks every page of a history and returns "Type/id/vid" of
// each entry, newest first; each Bundle must pass the validator.
func historyAll(t *testing.T, srv *testServer, path string) []string {
	t.Helper()
	var out []string
	for next := path; next != ""; {
		r := srv.do(http.MethodGet, strings.TrimPrefix(next, srv.URL), nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		if _, _, err := fhir.ParseResource(r.body); err != nil {
			t.Fatalf("history Bundle fails validation: %v", err)
		}
		b := decode(t, r.body)
		if b["type"] != "history" {
			t.Fatalf("Bundle.type %v", b["type"])
		}
		next = ""
		for _, l := range b["link"].([]any) {
			if l.(map[string]any)["relation"] == "next" {
				next = l.(map[string]any)["url"].(string)
			}
		}
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			em := e.(map[string]any)
			url := strings.TrimPrefix(em["fullUrl"].(string), srv.URL+"/")
			etag := em["response"].(map[string]any)["etag"].(string)
			out = append(out, url+"/"+strings.Trim(strings.TrimPrefix(etag, "W/"), `"`))
		}
	}
	return out
}

func TestTypeAndSystemHistory(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			for i := 0; i < 5; i++ {
				srv.do("PUT", fmt.Sprintf("/Patient/h%d", i), []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"h%d"}`, i)))
			}
			time.Sleep(5 * time.Millisecond)
			mid := time.Now().UTC()
			time.Sleep(5 * time.Millisecond)
			srv.do("PUT", "/Patient/h0", []byte(`{"resourceType":"Patient","id":"h0","active":true}`))
			srv.do("DELETE", "/Patient/h1", nil)
			srv.do("PUT", "/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`))

			typ := historyAll(t, srv, "/Patient/_history?_count=2")
			want := []string{"Patient/h1/2", "Patient/h0/2", "Patient/h4/1", "Patient/h3/1", "Patient/h2/1", "Patient/h1/1", "Patient/h0/1"}
			if strings.Join(typ, " ") != strings.Join(want, " ") {
				t.Errorf("type history\n got  %v\n want %v", typ, want)
			}
			sys := historyAll(t, srv, "/_history?_count=3")
			if len(sys) != 8 || sys[0] != "Observation/o1/1" {
				t.Errorf("system history: %v", sys)
			}
			since := historyAll(t, srv, "/_history?_since="+mid.Format(time.RFC3339Nano))
			if strings.Join(since, " ") != "Observation/o1/1 Patient/h1/2 Patient/h0/2" {
				t.Errorf("_since: %v", since)
			}
			at := historyAll(t, srv, "/Patient/_history?_at="+mid.Format(time.RFC3339Nano))
			if len(at) != 5 || strings.Contains(strings.Join(at, " "), "/2") {
				t.Errorf("_at before the updates: %v", at)
			}
			inst := historyAll(t, srv, "/Patient/h0/_history?_count=1")
			if strings.Join(inst, " ") != "Patient/h0/2 Patient/h0/1" {
				t.Errorf("instance history paged: %v", inst)
			}
			assertOutcome(t, srv.do("GET", "/_history?_since=yesterday", nil), 400)
			assertOutcome(t, srv.do("GET", "/_history?name=x", nil), 400)
		})
	}
}
