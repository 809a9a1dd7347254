package records

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

var courseFiles = []string{"course-iv", "course-im", "course-lozenge", "course-spravato"}

func testdataPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...)
}

// openTestStore opens a fresh SQLite file store.
func openTestStore(t testing.TB) search.Store {
	t.Helper()
	if _, err := ig.Profiles(); err != nil {
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

// loadRecords decodes a course file (NDJSON, every record valid).
func loadRecords(t testing.TB, name string) []mappings.Record {
	t.Helper()
	b, err := os.ReadFile(testdataPath("records", name+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return decodeLines(t, name, b)
}

// decodeLines decodes NDJSON whose every line is a valid record.
func decodeLines(t testing.TB, name string, ndjson []byte) []mappings.Record {
	t.Helper()
	var out []mappings.Record
	for i, line := range bytes.Split(ndjson, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := mappings.Decode(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", name, i+1, err)
		}
		out = append(out, rec)
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
	stores := map[string]func(testing.TB) search.Store{"sqlite": openTestStore}
	if sqltest.PostgresDSN(t) != "" {
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

// TestApplyDosingWaitsForClearance: a dosing session that arrives before
// any screening of its client clears them waits (pending on
// clearance/<client>) instead of being rejected; a screening that does not
// clear leaves it waiting; a cleared one maps it, in that screening's
// transaction (CHECKS.md, dosing.no_clearance).
func TestApplyDosingWaitsForClearance(t *testing.T) {
	a := testApplier(openTestStore(t))
	apply := func(js string) Result {
		t.Helper()
		rec, err := mappings.Decode([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Apply(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, js := range []string{
		`{"kind":"client","id":"c","name":{"family":"Client"},"birth_date":"1980-01-01","sex":"female"}`,
		`{"kind":"practitioner","id":"rx","name":{"family":"Prescriber"},"role":"prescriber","credential":"MD"}`,
		`{"kind":"practitioner","id":"th","name":{"family":"Therapist"},"role":"therapist","credential":"LCSW"}`,
		`{"kind":"course","id":"k","client":"c","prescriber":"rx","therapist":"th","indications":["trd"],"route":"iv","planned":{"preparation":2,"dosing":6,"integration":6},"status":"active","start":"2026-01-01"}`,
	} {
		if res := apply(js); res.Status != StatusCreated {
			t.Fatalf("%s: %s %v", js, res.Status, res.Errors)
		}
	}
	session := `{"kind":"session","id":"s1","course":"k","type":"dosing","status":"held","planned_start":"2026-01-05T10:00:00Z","actual_start":"2026-01-05T10:00:00Z","actual_end":"2026-01-05T11:00:00Z","practitioners":["rx"],"dose":{"drug":"ketamine","mg":35,"route":"iv","monitored_minutes":60}}`
	res := apply(session)
	if res.Status != StatusPending || !slices.Equal(res.Pending, []string{"clearance/c"}) {
		t.Fatalf("session before any screening: %s, pending %v, errors %v; want pending on clearance/c", res.Status, res.Pending, res.Errors)
	}
	screening := func(id, date, decision string) string {
		return `{"kind":"screening","id":"` + id + `","client":"c","course":"k","date":"` + date + `","performed_by":"rx","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":false,"contraindicated_medications":false,"decision":"` + decision + `"}}`
	}
	flagOf := func(r Result, code string) bool {
		for _, rr := range r.Resources {
			if rr.Type == "Flag" {
				v, err := a.Store.Read(t.Context(), fhir.Key{Tenant: fhir.DefaultTenant, Type: "Flag", ID: rr.ID})
				if err == nil && !v.Deleted && strings.Contains(string(v.JSON), `"code":"`+code+`"`) {
					return true
				}
			}
		}
		return false
	}
	// Issue 12: a dose given after a deferred decision no longer waits for
	// good: the deferred screening maps it, with a dosing.not_cleared alert
	// and its Flag.
	res = apply(screening("scr-deferred", "2026-01-02", "deferred"))
	i := slices.IndexFunc(res.Related, func(r Result) bool { return r.Kind == mappings.KindSession && r.ID == "s1" })
	if res.Status != StatusCreated || i < 0 || res.Related[i].Status != StatusCreated {
		t.Fatalf("deferred screening: %s, related %+v; want the session created with it", res.Status, res.Related)
	}
	s1 := res.Related[i]
	if !slices.ContainsFunc(s1.Warnings, func(p mappings.Problem) bool {
		return p.Code == "dosing.not_cleared" && p.Severity == mappings.SeverityAlert
	}) || !flagOf(s1, "dosing.not_cleared") {
		t.Fatalf("session after a deferred decision: warnings %v, resources %v; want a dosing.not_cleared alert and Flag", s1.Warnings, s1.Resources)
	}
	if p, err := a.Pending(t.Context()); err != nil || len(p) != 0 {
		t.Fatalf("after a deferred screening, pending %v (%v); want none", p, err)
	}
	// A later cleared decision governs: the session is mapped again and
	// its Flag goes.
	res = apply(screening("scr-cleared", "2026-01-03", "cleared"))
	i = slices.IndexFunc(res.Related, func(r Result) bool { return r.Kind == mappings.KindSession && r.ID == "s1" })
	if res.Status != StatusCreated || i < 0 || res.Related[i].Status != StatusUpdated || flagOf(res.Related[i], "dosing.not_cleared") {
		t.Fatalf("cleared screening: %s, related %+v; want the session updated without its Flag", res.Status, res.Related)
	}
	if p, err := a.Pending(t.Context()); err != nil || len(p) != 0 {
		t.Errorf("pending after clearance: %v (%v); want none", p, err)
	}
}

// TestStoreWithoutRecords: a store that keeps no practice records is
// refused with ErrNoRecordStore, on first use, by every entry point.
func TestStoreWithoutRecords(t *testing.T) {
	a := testApplier(memstore.New())
	if err := a.Check(); !errors.Is(err, ErrNoRecordStore) {
		t.Fatalf("Check: %v, want ErrNoRecordStore", err)
	}
	rec, err := mappings.Decode([]byte(`{"kind":"client","id":"c","name":{"family":"Client"},"birth_date":"1980-01-01"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(t.Context(), rec); !errors.Is(err, ErrNoRecordStore) {
		t.Errorf("Apply: %v", err)
	}
	if _, err := a.Pending(t.Context()); !errors.Is(err, ErrNoRecordStore) {
		t.Errorf("Pending: %v", err)
	}
	if _, err := (&Exporter{Store: memstore.New(), Mapper: a.Mapper}).Export(t.Context(), "k", io.Discard); !errors.Is(err, ErrNoRecordStore) {
		t.Errorf("Export: %v", err)
	}
}
