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
