package practice

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/conformance"
)

var courseFiles = []string{"course-iv", "course-im", "course-lozenge", "course-spravato"}

func testdataPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...)
}

// openTestStore opens a fresh SQLite file store.
func openTestStore(t testing.TB) fhir.Store {
	t.Helper()
	if err := conformance.Register(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testApplier(s fhir.Store) *Applier {
	return &Applier{Store: s, Mapper: &mappings.Mapper{Practice: "test-practice", Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}}
}

// loadRecords decodes a course file.
func loadRecords(t testing.TB, name string) []mappings.Record {
	t.Helper()
	f, err := os.Open(testdataPath("records", name+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mappings.Record
	err = mappings.DecodeStream(f, func(line int, rec mappings.Record, err error) error {
		if err != nil {
			t.Fatalf("%s:%d: %v", name, line, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func applyAll(t testing.TB, a *Applier, recs []mappings.Record) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, r := range recs {
		res, err := a.Apply(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		counts[res.Status]++
		if res.Status == StatusRejected {
			t.Errorf("%s/%s rejected: %v", res.Kind, res.ID, res.Errors)
		}
		for _, rel := range res.Related {
			if rel.Status == StatusRejected {
				t.Errorf("related %s/%s rejected: %v", rel.Kind, rel.ID, rel.Errors)
			}
		}
	}
	return counts
}

func TestApplyCourseTwice(t *testing.T) {
	s := openTestStore(t)
	a := testApplier(s)
	for _, name := range courseFiles {
		recs := loadRecords(t, name)
		c := applyAll(t, a, recs)
		if c[StatusCreated] != len(recs) {
			t.Errorf("%s: first import: %v, want %d created", name, c, len(recs))
		}
		before := snapshot(t, s)
		c = applyAll(t, a, recs)
		if c[StatusUnchanged] != len(recs) {
			t.Errorf("%s: re-import: %v, want all unchanged", name, c)
		}
		if after := snapshot(t, s); !equalSnapshots(before, after) {
			t.Errorf("%s: re-import changed the store", name)
		}
	}
	p, err := a.Pending(context.Background())
	if err != nil || len(p) != 0 {
		t.Errorf("pending: %v, %v", p, err)
	}
}

// TestApplyAnyOrder: shuffled arrival gives the same resources as the
// file order.
func TestApplyAnyOrder(t *testing.T) {
	ref := openTestStore(t)
	for _, name := range courseFiles {
		applyAll(t, testApplier(ref), loadRecords(t, name))
	}
	want := snapshot(t, ref)
	for seed := uint64(1); seed <= 3; seed++ {
		s := openTestStore(t)
		a := testApplier(s)
		for _, name := range courseFiles {
			recs := loadRecords(t, name)
			rand.New(rand.NewPCG(seed, 7)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			applyAll(t, a, recs)
		}
		p, err := a.Pending(context.Background())
		if err != nil || len(p) != 0 {
			for _, r := range p {
				t.Errorf("seed %d: still pending %s/%s on %v", seed, r.Kind, r.ID, r.Pending)
			}
		}
		got := snapshot(t, s)
		if !equalContent(want, got) {
			t.Errorf("seed %d: shuffled import differs from ordered import:\n%s", seed, diffSnapshots(want, got))
		}
	}
}

// TestApplyPostgres runs the course import twice on PostgreSQL.
func TestApplyPostgres(t *testing.T) {
	s := openPGStore(t)
	a := testApplier(s)
	for _, name := range courseFiles[:2] {
		recs := loadRecords(t, name)
		if c := applyAll(t, a, recs); c[StatusCreated] != len(recs) {
			t.Errorf("%s: first import: %v", name, c)
		}
		before := snapshot(t, s)
		if c := applyAll(t, a, recs); c[StatusUnchanged] != len(recs) {
			t.Errorf("%s: re-import: %v", name, c)
		}
		if !equalSnapshots(before, snapshot(t, s)) {
			t.Errorf("%s: re-import changed the store", name)
		}
	}
}

// TestApplyConcurrent: records applied from several goroutines at once,
// shuffled, still all resolve and make the same resources (SQLite runs
// the transactions one at a time; PostgreSQL relies on LockRecords).
func TestApplyConcurrent(t *testing.T) {
	ref := openTestStore(t)
	recs := loadRecords(t, "course-lozenge")
	applyAll(t, testApplier(ref), recs)
	want := snapshot(t, ref)
	stores := map[string]func(testing.TB) fhir.Store{"sqlite": openTestStore}
	if os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN") != "" {
		stores["postgres"] = openPGStore
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			a := testApplier(s)
			shuffled := append([]mappings.Record(nil), recs...)
			rand.New(rand.NewPCG(9, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			var wg sync.WaitGroup
			ch := make(chan mappings.Record)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range ch {
						res, err := a.Apply(context.Background(), r)
						if err != nil || res.Status == StatusRejected {
							t.Errorf("%v %+v", err, res)
						}
					}
				}()
			}
			for _, r := range shuffled {
				ch <- r
			}
			close(ch)
			wg.Wait()
			if p, err := a.Pending(context.Background()); err != nil || len(p) > 0 {
				t.Fatalf("pending after concurrent apply: %d, %v", len(p), err)
			}
			if got := snapshot(t, s); !equalContent(want, got) {
				t.Errorf("concurrent apply differs:\n%s", diffSnapshots(want, got))
			}
		})
	}
}
