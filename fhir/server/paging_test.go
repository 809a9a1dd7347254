package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestPagingStableUnderWrites walks 20 pages of a search while another
// client creates, updates and deletes matching resources: every resource
// that matched when the first page was read is returned exactly once
// (HAPI #3599 and #2859 shift or lose pages here).
func TestPagingStableUnderWrites(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			const n = 200 // 20 pages of 10
			body := func(id string, v int) []byte {
				return []byte(fmt.Sprintf(`{"resourceType":"Observation","id":"%s","status":"final","code":{"coding":[{"system":"urn:kap:test","code":"paging"}]},"valueQuantity":{"value":%d}}`, id, v))
			}
			var before map[string]bool
			for _, sortBy := range []string{"", "&_sort=-_lastUpdated", "&_sort=value-quantity"} {
				// top up: the previous round's writer deleted some
				for i := 0; i < n; i++ {
					id := fmt.Sprintf("p%03d", i)
					if r := srv.do(http.MethodPut, "/Observation/"+id, body(id, i)); r.status >= 300 {
						t.Fatalf("load: %d %s", r.status, r.body)
					}
				}
				all, _, _ := searchAll(t, srv, "/Observation?code=urn:kap:test|paging&_count=1000")
				before = map[string]bool{}
				for _, id := range all {
					before[id] = true
				}
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var writes atomic.Int64
				writer := func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						// update an existing match (moves it in _lastUpdated and value order),
						// create a new match, delete an old one
						old := fmt.Sprintf("p%03d", (i*37)%n)
						srv.do(http.MethodPut, "/Observation/"+old, body(old, 1000-i))
						nw := fmt.Sprintf("new%s%d", strings.Trim(sortBy, "&_=-"), i)
						srv.do(http.MethodPut, "/Observation/"+nw, body(nw, i))
						srv.do(http.MethodDelete, fmt.Sprintf("/Observation/p%03d", (i*53+7)%n), nil)
						writes.Add(3)
					}
				}
				seen := map[string]int{}
				next := "/Observation?code=urn:kap:test|paging&_count=10" + sortBy
				pages := 0
				for next != "" {
					r := srv.do(http.MethodGet, strings.TrimPrefix(next, srv.URL), nil)
					if r.status != 200 {
						t.Fatalf("page %d: %d %s", pages, r.status, r.body)
					}
					b := decode(t, r.body)
					entries, _ := b["entry"].([]any)
					for _, e := range entries {
						res := e.(map[string]any)["resource"].(map[string]any)
						seen["Observation/"+res["id"].(string)]++
					}
					next = ""
					for _, l := range b["link"].([]any) {
						if l.(map[string]any)["relation"] == "next" {
							next = l.(map[string]any)["url"].(string)
						}
					}
					pages++
					if pages == 1 {
						// the first page pins the snapshot; write from now on
						wg.Add(1)
						go writer()
					}
				}
				close(stop)
				wg.Wait()
				if writes.Load() < 3 {
					t.Errorf("%q: the writer made only %d writes during the walk; the test proves nothing", sortBy, writes.Load())
				}
				for id := range before {
					if seen[id] != 1 {
						t.Errorf("%q: %s seen %d times, want exactly once", sortBy, id, seen[id])
					}
				}
				for id, c := range seen {
					if c > 1 {
						t.Errorf("%q: %s seen %d times", sortBy, id, c)
					}
				}
				if pages < 20 {
					t.Errorf("%q: walked %d pages, want 20", sortBy, pages)
				}
			}
		})
	}
}
