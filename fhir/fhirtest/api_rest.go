package fhirtest

import (
	"net/http"
	"strings"
	"testing"
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
