package practice

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

var courseFiles = []string{"course-iv", "course-im", "course-lozenge", "course-spravato"}

func testdataPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...)
}

// openTestStore opens a fresh SQLite file store.
func openTestStore(t testing.TB) fhir.Store {
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

func testApplier(s fhir.Store) *records.Applier {
	return &records.Applier{Store: s, Mapper: testMapper()}
}

func testMapper() *mappings.Mapper {
	return &mappings.Mapper{Practice: "test-practice", Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
}

// recordStore is recordstore.Store under a name a test store can embed
// beside fhir.Store.
type recordStore = recordstore.Store

// tenantOf is the tenant an Applier stores under.
func tenantOf(a *records.Applier) string { return cmp.Or(a.Tenant, fhir.DefaultTenant) }

// loadRecords reads a course file of testdata/records with the import
// reader, failing on any reject.
func loadRecords(t testing.TB, name string) []mappings.Record {
	t.Helper()
	f, err := os.Open(testdataPath("records", name+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mappings.Record
	err = Read(f, FormatNDJSON, ReadOptions{}, func(it Item) error {
		if it.Err != nil {
			t.Fatalf("%s:%d: %v", name, it.Line, it.Err)
		}
		out = append(out, it.Record)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
