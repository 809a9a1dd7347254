package mappings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestReferencesNameEveryIDField: a record's References are exactly the
// values of its fields that name other records (the fields the record
// format checks as ids, bar its own id), and its Parent is among them.
// A kind that gains such a field without listing it fails here.
func TestReferencesNameEveryIDField(t *testing.T) {
	seen := map[Kind]bool{}
	for _, path := range recordFiles(t) {
		for _, rec := range loadRecords(t, path) {
			h := rec.RecordHeader()
			seen[h.Kind] = true
			b, _ := json.Marshal(rec)
			var tree any
			if err := json.Unmarshal(b, &tree); err != nil {
				t.Fatal(err)
			}
			var want []string
			var walk func(spec string, v any)
			walk = func(spec string, v any) {
				switch v := v.(type) {
				case map[string]any:
					for k, x := range v {
						walk(strings.TrimPrefix(spec+"."+k, "."), x)
					}
				case []any:
					for _, x := range v {
						walk(spec, x)
					}
				case string:
					if spec != "id" && recordFormats[string(h.Kind)+"."+spec] == fmtID {
						want = append(want, v)
					}
				}
			}
			walk("", tree)
			var got []string
			for _, r := range rec.References() {
				got = append(got, r.ID)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: References %v, id fields %v", h.Kind, h.ID, rec.References(), want)
			}
			if p := rec.Parent(); p.Kind != "" && !slices.Contains(rec.References(), p) {
				t.Errorf("%s %s: parent %v is not among its references %v", h.Kind, h.ID, p, rec.References())
			}
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("no %s record in testdata/records to check", k)
		}
	}
}

// TestNewRecordAndValues: NewRecord makes each kind's pointer, and a
// record passed by value is kept by the Book as a pointer to a copy.
func TestNewRecordAndValues(t *testing.T) {
	for _, k := range Kinds {
		r, ok := NewRecord(k)
		if !ok || r == nil {
			t.Fatalf("NewRecord(%s): %v %v", k, r, ok)
		}
		if rt, _ := RecordType(k); fmt.Sprintf("%T", r) != "*mappings."+rt.Name() {
			t.Errorf("NewRecord(%s) is %T, want *%s", k, r, rt.Name())
		}
	}
	if _, ok := NewRecord("invoice"); ok {
		t.Error("NewRecord of an unknown kind")
	}
	b := NewBook()
	v := Course{Header: Header{Kind: KindCourse, ID: "k"}, Client: "c"}
	b.Add(v)
	v.Client = "changed"
	if c, ok := b.Course("k"); !ok || c.Client != "c" || len(b.CoursesOf("c")) != 1 {
		t.Errorf("a course added by value: %+v %v, courses of c %v", c, ok, b.CoursesOf("c"))
	}
	b.Add((*Course)(nil))
	if b.Len() != 1 {
		t.Errorf("a nil *Course was added: %d records", b.Len())
	}
}
