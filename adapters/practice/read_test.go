package practice

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

// TestReadFramings: the framings a practice export uses, each record with
// the line it starts on (the import's rejects and the API's results name
// it), good and bad alike.
func TestReadFramings(t *testing.T) {
	note := func(id string) string {
		return `{"kind":"note","id":"` + id + `","session":"s","author":"a","date":"2026-01-01","text":"x"}`
	}
	type got struct {
		line int
		id   string
		bad  bool
	}
	tests := []struct {
		name string
		in   string
		want []got
	}{
		{"empty", "  \n\n", nil},
		{"ndjson with a bad line and a blank line", note("a") + "\n" + `{"kind":"note","id":"b"}` + "\n\n" + "not json\n" + note("d"),
			[]got{{1, "a", false}, {2, "", true}, {4, "", true}, {5, "d", false}}},
		{"ndjson with CRLF and BOM", "\ufeff" + note("a") + "\r\n" + note("b") + "\r\n", []got{{1, "a", false}, {2, "b", false}}},
		{"blank lines before ndjson", "\n\n" + note("a") + "\n" + note("b"), []got{{3, "a", false}, {4, "b", false}}},
		{"array over lines", "[\n  " + note("a") + ",\n  " + `{"kind":"nope"}` + ",\n\n  " + note("c") + "\n]\n", []got{{2, "a", false}, {3, "", true}, {5, "c", false}}},
		{"array on one line", "[" + note("a") + "," + note("b") + "]", []got{{1, "a", false}, {1, "b", false}}},
		{"pretty single document", "\n{\n  \"kind\": \"note\",\n  \"id\": \"p\",\n  \"session\": \"s\", \"author\": \"a\",\n  \"date\": \"2026-01-01\", \"text\": \"x\"\n}\n", []got{{2, "p", false}}},
		{"pretty documents in sequence", "{\n\"kind\":\"note\",\"id\":\"a\",\"session\":\"s\",\"author\":\"a\",\"date\":\"2026-01-01\",\"text\":\"x\"\n}\n{\n\"kind\":\"client\"\n}\n", []got{{1, "a", false}, {4, "", true}}},
		{"array cut short", "[\n" + note("a") + ",\n{\"kind\": ]", []got{{2, "a", false}, {3, "", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []got
			for _, it := range readString(t, FormatJSON, tt.in, ReadOptions{}) {
				g := got{line: it.Line, bad: it.Err != nil}
				if it.Record != nil {
					g.id = it.Record.RecordHeader().ID
				}
				if (it.Record == nil) == (it.Err == nil) {
					t.Errorf("line %d: record %v and error %v", it.Line, it.Record, it.Err)
				}
				out = append(out, g)
			}
			if !slices.Equal(out, tt.want) {
				t.Errorf("got %v, want %v", out, tt.want)
			}
		})
	}
}

// TestReadStopsAtFnError: fn's error ends the read at once and is
// returned.
func TestReadStopsAtFnError(t *testing.T) {
	stop := errors.New("stop")
	for _, f := range []Format{FormatJSON, FormatNDJSON} {
		n := 0
		err := Read(strings.NewReader(`{"kind":"x"}`+"\n"+`{"kind":"y"}`), f, ReadOptions{}, func(Item) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("%s: fn's error not returned at once: %v after %d calls", f, err, n)
		}
	}
}

// TestReadLongArray: in a long pretty-printed array each record's line is
// where its "{" is, across many buffer refills.
func TestReadLongArray(t *testing.T) {
	var recs []mappings.Record
	for range 20 {
		recs = append(recs, loadRecords(t, "course-spravato")...)
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i, line := range strings.Split(string(b), "\n") {
		if line == "  {" {
			want = append(want, i+1)
		}
	}
	var got []int
	for _, it := range readString(t, FormatJSON, string(b), ReadOptions{}) {
		if it.Err != nil {
			t.Errorf("line %d: %v", it.Line, it.Err)
		}
		got = append(got, it.Line)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d records; lines differ, first got %v want %v", len(got), got[:min(5, len(got))], want[:min(5, len(want))])
	}
}

// FuzzRead: whatever the input and format, Read never panics and every
// item has a line and exactly one of a record and an error. Seeded from
// testdata/records and the framing tests.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"client.json", "array.json", "course-iv.ndjson"} {
		b, err := os.ReadFile(testdataPath("records", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, format := range []Format{FormatJSON, FormatNDJSON, FormatCSV} {
			f.Add(b, string(format))
		}
	}
	f.Add([]byte("[\n{\"kind\":\"note\"},\n{\"kind\": ]"), string(FormatJSON))
	f.Add([]byte("\ufeff{\"kind\":\"client\"}\r\n\r\nnot json\n[1]"), string(FormatNDJSON))
	f.Add([]byte("id,name.family,birth_date\nc1,X,1980-01-01\nc2,\"Y\n"), string(FormatCSV))
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		switch Format(format) {
		case FormatJSON, FormatNDJSON, FormatCSV:
		default:
			return
		}
		err := Read(bytes.NewReader(data), Format(format), ReadOptions{}, func(it Item) error {
			if it.Line < 1 || (it.Record == nil) == (it.Err == nil) {
				t.Fatalf("item at line %d: record %v, error %v", it.Line, it.Record, it.Err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Read of memory: %v", err)
		}
	})
}

// TestReadDoseProduct: safety item 2. dose.product is read as the RxNorm
// code it is (a string, though it is all digits), and a code not in
// mappings.ProductCodes rejects the row.
func TestReadDoseProduct(t *testing.T) {
	const head = "id,course,type,status,planned_start,dose.drug,dose.mg,dose.route,dose.product\n"
	items := readString(t, FormatCSV, head+"s1,k1,dosing,held,2026-01-19T10:00:00-05:00,ketamine,41,iv,238083\n", ReadOptions{})
	if len(items) != 1 || items[0].Err != nil {
		t.Fatalf("%+v", items)
	}
	if s, ok := items[0].Record.(*mappings.Session); !ok || s.Dose == nil || s.Dose.Product != "238083" {
		t.Errorf("record %+v", items[0].Record)
	}
	items = readString(t, FormatCSV, head+"s1,k1,dosing,held,2026-01-19T10:00:00-05:00,ketamine,41,iv,1234567\n", ReadOptions{})
	if len(items) != 1 || items[0].Err == nil || !strings.Contains(items[0].Err.Error(), "dose.product") {
		t.Errorf("an unknown product code: %+v", items)
	}
}
