package server_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestConditionalCreateRace: 50 concurrent conditional creates of one
// identifier make exactly one resource (HAPI #3141, MS #1382 and Medplum
// #4878 make duplicates here).
func TestConditionalCreateRace(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			const n = 50
			ids := make([]string, n)
			statuses := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-start
					r := srv.do(http.MethodPost, "/Patient", patient("race-1", fmt.Sprint("N", i)), "If-None-Exist", "identifier=urn:kap:test|race-1")
					statuses[i] = r.status
					if r.status < 300 {
						ids[i], _ = decode(t, r.body)["id"].(string)
					}
				}(i)
			}
			close(start)
			wg.Wait()
			created := 0
			for i := range statuses {
				switch statuses[i] {
				case http.StatusCreated:
					created++
				case http.StatusOK:
				default:
					t.Errorf("request %d: status %d", i, statuses[i])
				}
				if ids[i] != ids[0] {
					t.Errorf("request %d got %s, request 0 got %s: two resources for one identifier", i, ids[i], ids[0])
				}
			}
			if created != 1 {
				t.Errorf("%d creates, want exactly 1", created)
			}
			// and the store agrees: one match, so a conditional update finds one
			if r := srv.do(http.MethodPut, "/Patient?identifier=urn:kap:test|race-1", patient("race-1", "Final")); r.status != http.StatusOK {
				t.Errorf("conditional update after the race: %d %s", r.status, r.body)
			}
		})
	}
}

// TestConcurrentUpdatesLoseNoVersion: 20 concurrent updates without
// If-Match all land, each as its own version (HAPI #5288 loses writes).
func TestConcurrentUpdatesLoseNoVersion(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			body := func(family string) []byte {
				return []byte(`{"resourceType":"Patient","id":"hot","name":[{"family":"` + family + `"}]}`)
			}
			if r := srv.do(http.MethodPut, "/Patient/hot", body("start")); r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			const n = 20
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if r := srv.do(http.MethodPut, "/Patient/hot", body(fmt.Sprint("w", i))); r.status != http.StatusOK {
						t.Errorf("update %d: %d %s", i, r.status, r.body)
					}
				}(i)
			}
			wg.Wait()
			r := srv.do(http.MethodGet, "/Patient/hot/_history", nil)
			entries := decode(t, r.body)["entry"].([]any)
			if len(entries) != n+1 {
				t.Fatalf("%d versions, want %d", len(entries), n+1)
			}
			seen := map[string]int{}
			for i, e := range entries {
				res := e.(map[string]any)["resource"].(map[string]any)
				if v := res["meta"].(map[string]any)["versionId"]; v != fmt.Sprint(n+1-i) {
					t.Errorf("entry %d has version %v, want %d", i, v, n+1-i)
				}
				seen[res["name"].([]any)[0].(map[string]any)["family"].(string)]++
			}
			for i := 0; i < n; i++ {
				if seen[fmt.Sprint("w", i)] != 1 {
					t.Errorf("write w%d appears %d times in history, want 1", i, seen[fmt.Sprint("w", i)])
				}
			}
		})
	}
}

// TestIfMatchRace: two updates racing with the same If-Match: exactly one
// wins, the other gets 412.
func TestIfMatchRace(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			for round := 0; round < 10; round++ {
				id := fmt.Sprint("m", round)
				srv.do(http.MethodPut, "/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`"}`))
				var wg sync.WaitGroup
				statuses := make([]int, 2)
				start := make(chan struct{})
				for i := 0; i < 2; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						<-start
						r := srv.do(http.MethodPut, "/Patient/"+id, []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"%s","gender":"%s"}`, id, []string{"male", "female"}[i])), "If-Match", `W/"1"`)
						statuses[i] = r.status
					}(i)
				}
				close(start)
				wg.Wait()
				ok, failed := 0, 0
				for _, s := range statuses {
					switch s {
					case http.StatusOK:
						ok++
					case http.StatusPreconditionFailed:
						failed++
					}
				}
				if ok != 1 || failed != 1 {
					t.Errorf("round %d: statuses %v, want one 200 and one 412", round, statuses)
				}
			}
		})
	}
}

// TestConditionalRaceShapes: for criteria other than a lone
// identifier=system|value, 50 concurrent conditional creates (or
// conditional updates) still make exactly one resource, on every store.
// PostgreSQL made 1-7 here before conditional writes took
// Tx.LockCriteria. The mixed shape races identifier-only writers (which
// lock the identifier) against identifier-plus-more writers.
func TestConditionalRaceShapes(t *testing.T) {
	type shape struct {
		name string
		// request i of the race
		method, path func(i int) string
		header       func(i int) []string
		search       string // finds what the race made
	}
	post := func(int) string { return http.MethodPost }
	put := func(int) string { return http.MethodPut }
	path := func(p string) func(int) string { return func(int) string { return p } }
	ifNone := func(c string) func(int) []string { return func(int) []string { return []string{"If-None-Exist", c} } }
	none := func(int) []string { return nil }
	shapes := []shape{
		{"create identifier and active", post, path("/Patient"), ifNone("identifier=urn:kap:test|s1&active=true"), "identifier=urn:kap:test|s1"},
		{"create family", post, path("/Patient"), ifNone("family=Shape2"), "family=Shape2"},
		{"create name and birthdate", post, path("/Patient"), ifNone("name=Shape3&birthdate=1980-01-01"), "name=Shape3"},
		{"update family", put, path("/Patient?family=Shape4"), none, "family=Shape4"},
		{"update identifier and active", put, path("/Patient?identifier=urn:kap:test|s5&active=true"), none, "identifier=urn:kap:test|s5"},
		{"create mixed identifier shapes", post, path("/Patient"), func(i int) []string {
			if i%2 == 0 {
				return []string{"If-None-Exist", "identifier=urn:kap:test|s6"}
			}
			return []string{"If-None-Exist", "identifier=urn:kap:test|s6&family=Shape6"}
		}, "identifier=urn:kap:test|s6"},
	}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			for k, sh := range shapes {
				t.Run(sh.name, func(t *testing.T) {
					n := k + 1
					body := []byte(fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:kap:test","value":"s%d"}],"active":true,"name":[{"family":"Shape%d","given":["Shape%d"]}],"birthDate":"1980-01-01"}`, n, n, n))
					const racers = 50
					statuses := make([]int, racers)
					var wg sync.WaitGroup
					start := make(chan struct{})
					for i := range racers {
						wg.Go(func() {
							<-start
							r := srv.do(sh.method(i), sh.path(i), body, sh.header(i)...)
							statuses[i] = r.status
							if r.status >= 300 {
								t.Errorf("request %d: %d %s", i, r.status, r.body)
							}
						})
					}
					close(start)
					wg.Wait()
					created := 0
					for _, s := range statuses {
						if s == http.StatusCreated {
							created++
						}
					}
					r := srv.do(http.MethodGet, "/Patient?_summary=count&"+sh.search, nil)
					if total := fmt.Sprint(decode(t, r.body)["total"]); total != "1" || created != 1 {
						t.Errorf("%s resources match %s after the race (%d answered 201); want exactly 1", total, sh.search, created)
					}
				})
			}
		})
	}
}
