package practice

import (
	"encoding/json"
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
// CSV files per kind read as records that map to the same FHIR resources
// (NDJSON and JSON to the same records in the same order, too).
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
			read := map[string][]mappings.Record{}
			mapped := map[string]map[string]string{}
			for format, files := range sets {
				for _, file := range files {
					for _, it := range readFile(t, file, ReadOptions{}) {
						if it.Err != nil {
							t.Fatalf("%s %s:%d: %v", format, filepath.Base(file), it.Line, it.Err)
						}
						read[format] = append(read[format], it.Record)
					}
				}
				if len(read[format]) < 50 {
					t.Errorf("%s: only %d records", format, len(read[format]))
				}
				mapped[format] = mapAll(t, read[format])
			}
			if a, b := marshalAll(read["ndjson"]), marshalAll(read["json"]); a != b {
				t.Errorf("JSON reads other records than NDJSON")
			}
			for _, format := range []string{"json", "csv"} {
				want, got := mapped["ndjson"], mapped[format]
				for k, w := range want {
					if got[k] != w {
						t.Errorf("%s: %s differs from NDJSON's:\n%s\n%s", format, k, got[k], w)
					}
				}
				if len(got) != len(want) {
					t.Errorf("%s: %d resources, NDJSON %d", format, len(got), len(want))
				}
			}
		})
	}
}

// mapAll maps every record, against all of them, to FHIR: resource
// "Type/id" to its JSON.
func mapAll(t *testing.T, recs []mappings.Record) map[string]string {
	t.Helper()
	b := mappings.NewBook()
	for _, r := range recs {
		b.Add(r)
	}
	out := map[string]string{}
	m := testMapper()
	for _, kind := range mappings.Kinds {
		for _, r := range b.All(kind) {
			res, _, err := m.ToFHIR(b, r)
			if err != nil {
				t.Fatalf("%s %s: %v", kind, r.RecordHeader().ID, err)
			}
			for _, v := range res {
				out[v.GetString("resourceType")+"/"+v.GetString("id")] = string(v.Encode())
			}
		}
	}
	return out
}

func marshalAll(recs []mappings.Record) string {
	b, _ := json.Marshal(recs)
	return string(b)
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
