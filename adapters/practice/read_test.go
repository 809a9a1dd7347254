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

// TestCSVDocExamples: every CSV example in CSV.md reads as valid records.
func TestCSVDocExamples(t *testing.T) {
	doc, err := os.ReadFile("CSV.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```csv\n")[1:]
	if len(blocks) < 4 {
		t.Fatalf("%d CSV examples", len(blocks))
	}
	for _, b := range blocks {
		csvText, _, _ := strings.Cut(b, "```")
		for _, it := range readString(t, FormatCSV, csvText, ReadOptions{}) {
			if it.Err != nil {
				t.Errorf("CSV.md example line %d: %v\n%s", it.Line, it.Err, csvText)
			}
		}
	}
}

// TestReadDateFormats: Go and strftime-like layouts.
func TestReadDateFormats(t *testing.T) {
	for _, tc := range []struct{ format, cell, want string }{
		{"02/01/2006", "17/03/1984", "1984-03-17"},
		{"%d/%m/%Y", "17/03/1984", "1984-03-17"},
		{"%m/%d/%y", "03/17/84", "1984-03-17"},
		{"%d %b %Y", "17 Mar 1984", "1984-03-17"},
	} {
		items := readString(t, FormatCSV, "id,name.family,birth_date\nc1,X,"+tc.cell+"\n", ReadOptions{DateFormat: tc.format})
		if len(items) != 1 || items[0].Err != nil {
			t.Errorf("%s %s: %+v", tc.format, tc.cell, items)
			continue
		}
		if got := items[0].Record.(*mappings.Client).BirthDate; got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.format, tc.cell, got, tc.want)
		}
	}
	items := readString(t, FormatCSV, "id,session,time,vitals.heart_rate\no1,s1,15/01/2026 10:40,80\n", ReadOptions{DateFormat: "%d/%m/%Y %H:%M"})
	if len(items) != 1 || items[0].Err != nil || items[0].Record.(*mappings.Observation).Time != "2026-01-15T10:40:00Z" {
		t.Errorf("date-time: %+v", items)
	}
}
