package practice

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
)

// readFile reads one import file into its items.
func readFile(t testing.TB, path string, opts ReadOptions) []Item {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var items []Item
	if err := Read(f, FormatOf(path), opts, func(it Item) error { items = append(items, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return items
}

func readString(t testing.TB, f Format, s string, opts ReadOptions) []Item {
	t.Helper()
	var items []Item
	if err := Read(strings.NewReader(s), f, opts, func(it Item) error { items = append(items, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return items
}

// TestFormatsSameResources: the course files as NDJSON, one JSON array and
// CSV files per kind make the same FHIR resources.
func TestFormatsSameResources(t *testing.T) {
	for _, name := range courseFiles {
		t.Run(name, func(t *testing.T) {
			sets := map[string][]string{
				"ndjson": {testdataPath("records", name+".ndjson")},
				"json":   {testdataPath("import", name+".json")},
			}
			for _, kind := range mappings.Kinds {
				p := testdataPath("import", name, csvFiles[kind])
				if _, err := os.Stat(p); err == nil {
					sets["csv"] = append(sets["csv"], p)
				}
			}
			snaps := map[string]storeSnapshot{}
			for format, files := range sets {
				s := openTestStore(t)
				a := testApplier(s)
				n := 0
				for _, file := range files {
					for _, it := range readFile(t, file, ReadOptions{}) {
						if it.Err != nil {
							t.Fatalf("%s %s:%d: %v", format, filepath.Base(file), it.Line, it.Err)
						}
						n++
						applyAll(t, a, []mappings.Record{it.Record})
					}
				}
				if n < 50 {
					t.Errorf("%s: only %d records", format, n)
				}
				if p, _ := a.Pending(context.Background()); len(p) > 0 {
					t.Errorf("%s: %d pending", format, len(p))
				}
				snaps[format] = snapshot(t, s)
			}
			if !equalSnapshots(snaps["ndjson"], snaps["json"]) {
				t.Errorf("JSON differs from NDJSON:\n%s", diffSnapshots(snaps["ndjson"], snaps["json"]))
			}
			if !equalContent(snaps["ndjson"], snaps["csv"]) {
				t.Errorf("CSV differs from NDJSON:\n%s", diffSnapshots(snaps["ndjson"], snaps["csv"]))
			}
		})
	}
}
