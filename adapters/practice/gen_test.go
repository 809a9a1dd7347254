package practice

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
)

var update = flag.Bool("update", false, "rewrite testdata/import from testdata/records")

// csvFiles names the CSV file of each kind in testdata/import/<course>/.
var csvFiles = map[mappings.Kind]string{
	mappings.KindClient:       "clients.csv",
	mappings.KindPractitioner: "practitioners.csv",
	mappings.KindCourse:       "courses.csv",
	mappings.KindSession:      "sessions.csv",
	mappings.KindScreening:    "scores.csv",
	mappings.KindObservation:  "vitals.csv",
	mappings.KindNote:         "notes.csv",
	mappings.KindConsent:      "consents.csv",
}

// flatten spells a record as CSV columns (CSV.md).
func flatten(t testing.TB, rec mappings.Record) map[string]string {
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		case []any:
			if prefix == "instruments" {
				for _, in := range v {
					in := in.(map[string]any)
					name := in["instrument"].(string)
					for k, x := range in {
						switch k {
						case "instrument":
						case "items":
							walk(name, x)
						default:
							walk(name+"."+k, x)
						}
					}
				}
				return
			}
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = scalar(x)
			}
			out[prefix] = strings.Join(parts, "|")
		default:
			out[prefix] = scalar(v)
		}
	}
	walk("", m)
	delete(out, "kind")
	return out
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestGenerateImportFiles writes (with -update) or checks the JSON array
// and CSV forms of the four course files.
func TestGenerateImportFiles(t *testing.T) {
	for _, name := range courseFiles {
		recs := loadRecords(t, name)
		files := map[string][]byte{}
		// JSON: one array, pretty-printed.
		var arr bytes.Buffer
		arr.WriteString("[\n")
		for i, r := range recs {
			b, _ := json.MarshalIndent(r, "  ", "  ")
			arr.WriteString("  ")
			arr.Write(b)
			if i < len(recs)-1 {
				arr.WriteString(",")
			}
			arr.WriteString("\n")
		}
		arr.WriteString("]\n")
		files[name+".json"] = arr.Bytes()
		// CSV: a file per kind, columns in first-seen order with id first.
		for _, kind := range mappings.Kinds {
			var rows []map[string]string
			cols := []string{"id"}
			for _, r := range recs {
				if r.RecordHeader().Kind != kind {
					continue
				}
				f := flatten(t, r)
				keys := make([]string, 0, len(f))
				for k := range f {
					keys = append(keys, k)
				}
				// Instrument columns in mappings.Instruments order: the
				// reader keeps the instruments in column order.
				rank := func(k string) int {
					head, _, _ := strings.Cut(k, ".")
					return slices.Index(mappings.Instruments, head)
				}
				slices.SortFunc(keys, func(a, b string) int {
					if ra, rb := rank(a), rank(b); ra != rb {
						return ra - rb
					}
					return strings.Compare(a, b)
				})
				for _, k := range keys {
					if !slices.Contains(cols, k) {
						cols = append(cols, k)
					}
				}
				rows = append(rows, f)
			}
			if len(rows) == 0 {
				continue
			}
			var buf bytes.Buffer
			w := csv.NewWriter(&buf)
			w.Write(cols)
			for _, r := range rows {
				line := make([]string, len(cols))
				for i, c := range cols {
					line[i] = r[c]
				}
				w.Write(line)
			}
			w.Flush()
			files[filepath.Join(name, csvFiles[kind])] = buf.Bytes()
		}
		for path, data := range files {
			full := testdataPath("import", path)
			if *update {
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			have, err := os.ReadFile(full)
			if err != nil || !bytes.Equal(have, data) {
				t.Errorf("%s is stale or missing: go test ./adapters/practice -run TestGenerateImportFiles -update", full)
			}
		}
	}
}
