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
