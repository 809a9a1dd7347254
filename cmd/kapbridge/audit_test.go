package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestAuditTrail runs a scripted session against `kapbridge serve`
// (authorization on, SQLite): every request, the refused ones included,
// has its AuditEvent (who, what, outcome, address), which a client with
// system/AuditEvent.rs finds by search, which no other client reads, and
// which no client can change or delete.
func TestAuditTrail(t *testing.T) {
	store := filepath.Join(t.TempDir(), "kap.db")
	writer := addClient(t, store, "writer", smart.ES384, "default", "system/*.cruds")
	reader := addClient(t, store, "reader", smart.ES384, "default", "system/Observation.rs")
	auditor := addClient(t, store, "auditor", smart.ES384, "default", "system/AuditEvent.rs")
	base, _ := startServeCtl(t, store, freeAddr(t))
	wTok := writer.token(t, base, "system/*.cruds")
	rTok := reader.token(t, base, "system/Observation.rs")
	aTok := auditor.token(t, base, "system/AuditEvent.rs")
	g := &gatewayProc{base: base}

	type step struct {
		id, token, method, path, body string
		status                        int
		client, subtype, outcome      string
	}
	patient := `{"resourceType":"Patient","id":"p1","name":[{"family":"Rivera"}]}`
	session := []step{
		{"s-create", wTok, "PUT", "/Patient/p1", patient, 201, "writer", "update", "0"},
		{"s-post", wTok, "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`, 201, "writer", "create", "0"},
		{"s-read", wTok, "GET", "/Patient/p1", "", 200, "writer", "read", "0"},
		{"s-vread", wTok, "GET", "/Patient/p1/_history/1", "", 200, "writer", "vread", "0"},
		{"s-search", wTok, "GET", "/Patient?name=Rivera", "", 200, "writer", "search-type", "0"},
		{"s-history", wTok, "GET", "/Patient/p1/_history", "", 200, "writer", "history-instance", "0"},
		{"s-bundle", wTok, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/p1"}}]}`, 200, "writer", "batch", "0"},
		{"s-delete", wTok, "DELETE", "/Patient/p1", "", 204, "writer", "delete", "0"},
		{"s-notoken", "", "GET", "/Patient/p1", "", 401, "", "read", "4"},
		{"s-badtoken", "garbage", "GET", "/Patient", "", 401, "", "search-type", "4"},
		{"s-forbidden", rTok, "GET", "/Patient/p1", "", 403, "reader", "read", "4"},
		{"s-escalate", rTok, "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"y"}}`, 403, "reader", "create", "4"},
		{"s-audit-write", wTok, "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`, 403, "writer", "create", "4"},
		{"s-audit-read", wTok, "GET", "/AuditEvent", "", 403, "writer", "search-type", "4"},
	}
	for _, st := range session {
		h := map[string]string{"X-Request-Id": st.id}
		if st.token != "" {
			h["Authorization"] = "Bearer " + st.token
		}
		if a := g.do(t, st.method, st.path, h, st.body); a.status != st.status {
			t.Fatalf("%s: %s %s = %d %.300s, want %d", st.id, st.method, st.path, a.status, a.body, st.status)
		}
	}

	// Requests net/http refuses before any handler runs (headers over
	// the limit: 431; a control character in a header: 400) are audited
	// by the listener: method and path, never the query.
	addr := strings.TrimPrefix(base, "http://")
	raw := func(req string) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go conn.Write([]byte(req)) // the server may answer before it read all
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return line
	}
	if l := raw("GET /Patient/p431?name=Rivera HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n"); !strings.Contains(l, " 431 ") {
		t.Fatalf("oversized headers: %q, want a 431", l)
	}
	if l := raw("GET /Patient/p400?name=Rivera HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n"); !strings.Contains(l, " 400 ") {
		t.Fatalf("a control character in a header: %q, want a 400", l)
	}
	edge := map[string]string{"/Patient/p431 answered Request Header Fields Too Large (431)": "", "/Patient/p400 answered Bad Request (400)": ""}

	// The auditor's search finds each, as it was (the trail is written in
	// batches, off the request path: wait a little for it).
	found := map[string]map[string]any{}
	edgeFound := func() bool {
		for _, v := range edge {
			if v == "" {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); (len(found) < len(session) || !edgeFound()) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a := g.do(t, "GET", "/AuditEvent?_count=1000", map[string]string{"Authorization": "Bearer " + aTok}, "")
		if a.status != 200 {
			t.Fatalf("auditor search: %d %s", a.status, a.body)
		}
		var b struct {
			Entry []struct{ Resource map[string]any } `json:"entry"`
		}
		if err := json.Unmarshal(a.body, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			js, _ := json.Marshal(e.Resource)
			if strings.Contains(string(js), audit.SysEntry) {
				continue // a Bundle entry's event (TestAuditBundleEntries)
			}
			for k := range edge {
				if strings.Contains(string(js), k) {
					edge[k] = string(js)
				}
			}
			for _, en := range e.Resource["entity"].([]any) {
				if id, ok := en.(map[string]any)["what"].(map[string]any)["identifier"].(map[string]any); ok {
					found[id["value"].(string)] = e.Resource
				}
			}
		}
	}
	for _, st := range session {
		ev, ok := found[st.id]
		if !ok {
			t.Errorf("%s: no AuditEvent", st.id)
			continue
		}
		js, _ := json.Marshal(ev)
		s := string(js)
		want := []string{`"outcome":"` + st.outcome + `"`, `"code":"` + st.subtype + `"`, `"code":"rest"`, `"address":"127.0.0.1"`}
		if st.client != "" {
			want = append(want, `"value":"`+st.client+`"`)
		} else {
			want = append(want, "unauthenticated")
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("%s: %s not in its AuditEvent %s", st.id, w, s)
			}
		}
		if strings.Contains(s, "Rivera") {
			t.Errorf("%s: the AuditEvent carries PHI: %s", st.id, s)
		}
	}
	for k, ev := range edge {
		switch {
		case ev == "":
			t.Errorf("no AuditEvent says %q", k)
		case strings.Contains(ev, "Rivera"):
			t.Errorf("the listener's AuditEvent carries the query: %s", ev)
		case !strings.Contains(ev, `"outcome":"4"`) || !strings.Contains(ev, `"address":"127.0.0.1"`) || !strings.Contains(ev, "unauthenticated"):
			t.Errorf("the listener's AuditEvent lacks outcome, address or agent: %s", ev)
		}
	}
	// Append-only, even for the auditor.
	for _, m := range []struct{ method, path, body string }{
		{"DELETE", "/AuditEvent/x", ""},
		{"PUT", "/AuditEvent/x", `{"resourceType":"AuditEvent","id":"x"}`},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"AuditEvent?outcome=0"}}]}`},
	} {
		if a := g.do(t, m.method, m.path, map[string]string{"Authorization": "Bearer " + aTok}, m.body); a.status != http.StatusForbidden {
			t.Errorf("auditor %s %s: %d %s, want 403", m.method, m.path, a.status, a.body)
		}
	}
}

// TestAuditBundleEntries: every entry of a batch or transaction has its
// own AuditEvent beside the Bundle's (the same request id links them),
// with the entry's interaction, resource and outcome: a batch's entries
// each as they came out, a failed transaction's entries all failed (the
// audit is written although the transaction rolled back), and the entries
// of a Bundle refused for the token's scopes, the forbidden one as such.
// On SQLite and PostgreSQL, through `kapbridge serve`.
func TestAuditBundleEntries(t *testing.T) {
	for name, newStore := range serveStores(t) {
		t.Run(name, func(t *testing.T) { runAuditBundleEntries(t, newStore(t)) })
	}
}

func runAuditBundleEntries(t *testing.T, store string) {
	writer := addClient(t, store, "writer", smart.ES384, "default", "system/*.cruds")
	reader := addClient(t, store, "reader", smart.ES384, "default", "system/Observation.rs")
	auditor := addClient(t, store, "auditor", smart.ES384, "default", "system/AuditEvent.rs")
	base, _ := startServeCtl(t, store, freeAddr(t))
	wTok, rTok := writer.token(t, base, "system/*.cruds"), reader.token(t, base, "system/Observation.rs")
	aTok := auditor.token(t, base, "system/AuditEvent.rs")
	g := &gatewayProc{base: base}
	post := func(id, tok, body string, want int) {
		t.Helper()
		a := g.do(t, "POST", "/", map[string]string{"X-Request-Id": id, "Authorization": "Bearer " + tok}, body)
		if a.status != want {
			t.Fatalf("%s: %d %.500s, want %d", id, a.status, a.body, want)
		}
	}
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`
	bad := `{"resourceType":"Observation","code":{"text":"no status"}}`
	post("b-batch", wTok, `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":{"resourceType":"Patient","id":"p2","name":[{"family":"Rivera"}]},"request":{"method":"PUT","url":"Patient/p2"}},
		{"request":{"method":"GET","url":"Patient/p2"}},
		{"request":{"method":"GET","url":"Patient/nope"}},
		{"resource":`+bad+`,"request":{"method":"POST","url":"Observation"}},
		{"resource":`+obs+`,"request":{"method":"POST","url":"Observation"}}]}`, 200)
	post("b-tx-ok", wTok, `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":`+obs+`,"request":{"method":"POST","url":"Observation"}},
		{"request":{"method":"DELETE","url":"Patient/p2"}}]}`, 200)
	post("b-tx-fail", wTok, `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":`+obs+`,"request":{"method":"POST","url":"Observation"}},
		{"resource":`+bad+`,"request":{"method":"PUT","url":"Observation/o9"}}]}`, 400)
	post("b-tx-refused", rTok, `{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"GET","url":"Observation?code=x"}},
		{"request":{"method":"GET","url":"Patient/p2"}}]}`, 403)
	post("b-batch-refused", rTok, `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":`+obs+`,"request":{"method":"POST","url":"Observation"}},
		{"request":{"method":"GET","url":"Observation/x"}}]}`, 403)

	type want struct {
		subtype, outcome, status, entity string
		note                             string
	}
	wants := map[string]want{
		"b-batch":           {"batch", "0", "(200)", "", ""},
		"b-batch#1":         {"update", "0", ": 201 Created", "Patient/p2", ""},
		"b-batch#2":         {"read", "0", ": 200 OK", "Patient/p2", ""},
		"b-batch#3":         {"read", "4", ": 404 Not Found", "Patient/nope", ""},
		"b-batch#4":         {"create", "4", ": 400 Bad Request", "", ""},
		"b-batch#5":         {"create", "0", ": 201 Created", "Observation/", ""},
		"b-tx-ok":           {"transaction", "0", "(200)", "", ""},
		"b-tx-ok#1":         {"create", "0", ": 201 Created", "Observation/", ""},
		"b-tx-ok#2":         {"delete", "0", ": 20", "Patient/p2", ""},
		"b-tx-fail":         {"transaction", "4", "(400)", "", ""},
		"b-tx-fail#1":       {"create", "4", ": 400 Bad Request", "", "rolled back"},
		"b-tx-fail#2":       {"update", "4", ": 400 Bad Request", "Observation/o9", "this entry failed"},
		"b-tx-refused":      {"transaction", "4", "(403)", "", ""},
		"b-tx-refused#1":    {"search-type", "4", ": 403 Forbidden", "", "not processed"},
		"b-tx-refused#2":    {"read", "4", ": 403 Forbidden", "Patient/p2", "scopes do not permit"},
		"b-batch-refused":   {"batch", "4", "(403)", "", ""},
		"b-batch-refused#1": {"create", "4", ": 403 Forbidden", "", "scopes do not permit"},
		"b-batch-refused#2": {"read", "4", ": 403 Forbidden", "Observation/x", "not processed"},
	}
	found := map[string]string{}
	for deadline := time.Now().Add(10 * time.Second); len(found) < len(wants) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a := g.do(t, "GET", "/AuditEvent?_count=1000", map[string]string{"Authorization": "Bearer " + aTok}, "")
		if a.status != 200 {
			t.Fatalf("auditor search: %d %s", a.status, a.body)
		}
		var b struct {
			Entry []struct {
				Raw json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(a.body, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			var ev struct {
				Entity []struct {
					What struct {
						Identifier struct{ System, Value string }
					}
				}
			}
			if err := json.Unmarshal(e.Raw, &ev); err != nil {
				t.Fatal(err)
			}
			var req, entry string
			for _, en := range ev.Entity {
				switch en.What.Identifier.System {
				case audit.SysRequest:
					req = en.What.Identifier.Value
				case audit.SysEntry:
					entry = en.What.Identifier.Value
				}
			}
			key := req
			if entry != "" {
				key = entry
				if !strings.HasPrefix(entry, req+"#") {
					t.Errorf("entry event %s not linked to its request %s", entry, req)
				}
			}
			if _, ok := wants[key]; ok {
				if _, dup := found[key]; dup && found[key] != string(e.Raw) {
					t.Errorf("two AuditEvents for %s", key)
				}
				found[key] = string(e.Raw)
			}
		}
	}
	for key, w := range wants {
		ev, ok := found[key]
		if !ok {
			t.Errorf("%s: no AuditEvent", key)
			continue
		}
		for _, s := range []string{`"code":"` + w.subtype + `"`, `"outcome":"` + w.outcome + `"`, w.status, w.entity, w.note} {
			if !strings.Contains(ev, s) {
				t.Errorf("%s: %q not in its AuditEvent %s", key, s, ev)
			}
		}
		if strings.Contains(ev, "Rivera") || strings.Contains(ev, "code=x") {
			t.Errorf("%s: the AuditEvent carries PHI or a query: %s", key, ev)
		}
	}
}
