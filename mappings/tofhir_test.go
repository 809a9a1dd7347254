package mappings

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/mappings")

// testNow is the fixed clock of the golden files.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testMapper() *Mapper {
	return &Mapper{Practice: "acme-kap", Now: func() time.Time { return testNow }}
}

// memBook is the records' Book plus the order the records came in, which
// the golden files follow.
type memBook struct {
	*Book
	records []Record
}

func newMemBook() *memBook { return &memBook{Book: NewBook()} }

func (b *memBook) add(r Record) {
	b.Book.Add(r)
	b.records = append(b.records, r)
}

// loadCourse decodes a full-course NDJSON file of testdata/records.
func loadCourse(t testing.TB, name string) *memBook {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "records", name+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	b := newMemBook()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := Decode(line)
		if err != nil {
			t.Fatalf("%s line %d: %v", name, n, err)
		}
		b.add(r)
	}
	return b
}

var fullCourses = []string{"course-iv", "course-im", "course-lozenge", "course-spravato"}

// goldenRecord is what one golden file holds: a record's resources and
// warnings.
type goldenRecord struct {
	Resources []json.RawMessage `json:"resources"`
	Warnings  []goldenWarning   `json:"warnings,omitempty"`
}

// goldenWarning is a warning of ToFHIR in a golden file: its field and
// message.
type goldenWarning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// TestGoldenCourses maps every record of each full course and compares
// the result, as decoded JSON, with testdata/mappings/<course>/<kind>-<id>.json.
func TestGoldenCourses(t *testing.T) {
	for _, name := range fullCourses {
		t.Run(name, func(t *testing.T) {
			b := loadCourse(t, name)
			m := testMapper()
			dir := filepath.Join("..", "testdata", "mappings", name)
			if *update {
				os.RemoveAll(dir)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			for _, r := range b.records {
				h := r.RecordHeader()
				res, warns, err := m.ToFHIR(b, r)
				if err != nil {
					t.Fatalf("%s %s: %v", h.Kind, h.ID, err)
				}
				var g goldenRecord
				for _, w := range warns {
					g.Warnings = append(g.Warnings, goldenWarning{w.Field, w.Message})
				}
				for _, v := range res {
					g.Resources = append(g.Resources, json.RawMessage(v.Encode()))
				}
				got, err := json.MarshalIndent(g, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(dir, string(h.Kind)+"-"+h.ID+".json")
				seen[filepath.Base(file)] = true
				if *update {
					if err := os.WriteFile(file, append(got, '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				var gv, wv any
				if err := json.Unmarshal(got, &gv); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(want, &wv); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if !reflect.DeepEqual(gv, wv) {
					t.Errorf("%s differs from the mapping (run go test -update and review the diff):\n%s", file, got)
				}
			}
			if !*update {
				files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
				for _, f := range files {
					if !seen[filepath.Base(f)] {
						t.Errorf("%s: golden file of no record", f)
					}
				}
			}
		})
	}
}

// mapAll maps every record of a book, failing the test on an error.
func mapAll(t testing.TB, m *Mapper, b *memBook) []*fhir.Value {
	t.Helper()
	var all []*fhir.Value
	for _, r := range b.records {
		res, _, err := m.ToFHIR(b, r)
		if err != nil {
			h := r.RecordHeader()
			t.Fatalf("%s %s: %v", h.Kind, h.ID, err)
		}
		all = append(all, res...)
	}
	return all
}

// TestCoursesValidate: every resource of the full courses passes the base
// R4 validation and the profiles it claims that the project publishes,
// references resolve within the course, ids are unique.
func TestCoursesValidate(t *testing.T) {
	published, err := ig.Profiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range fullCourses {
		t.Run(name, func(t *testing.T) {
			b := loadCourse(t, name)
			all := mapAll(t, testMapper(), b)
			if len(all) < 60 {
				t.Errorf("only %d resources for a full course", len(all))
			}
			ids := map[string]bool{}
			for _, v := range all {
				key := v.GetString("resourceType") + "/" + v.GetString("id")
				if ids[key] {
					t.Errorf("%s made twice", key)
				}
				ids[key] = true
				if _, _, err := fhir.ParseResource(v.Encode()); err != nil {
					t.Errorf("%s: %v", key, err)
				}
				if issues := published.Validate(v); fhir.HasErrors(issues) {
					t.Errorf("%s: profile: %v", key, fhir.ProfileError(issues))
				}
				var profiles []*fhir.Value
				if ps := v.Get("meta").Get("profile"); ps != nil {
					profiles = ps.Array
				}
				for _, p := range profiles {
					if strings.HasPrefix(p.Str, CanonicalBase) && !published.Known(p.Str) {
						t.Errorf("%s claims %s, which the project does not publish", key, p.Str)
					}
				}
				if !hasLabel(v, SysActCode, "PSY") && !hasLabel(v, SysActCode, "PSYTHPN") {
					t.Errorf("%s: no PSY or PSYTHPN label", key)
				}
			}
			// Every literal reference to a made resource type points at a
			// resource the course made (except Practitioners, Patients:
			// made too, so all of them).
			for _, v := range all {
				walkRefs(v, func(r string) {
					if strings.HasPrefix(r, "#") {
						return
					}
					if !ids[r] {
						t.Errorf("%s/%s refers to %s, which the course did not make", v.GetString("resourceType"), v.GetString("id"), r)
					}
				})
			}
		})
	}
}

func walkRefs(v *fhir.Value, f func(string)) {
	switch v.Kind {
	case fhir.KindObject:
		for _, m := range v.Members {
			if m.Key == "reference" && m.Value.Kind == fhir.KindString {
				f(m.Value.Str)
				continue
			}
			walkRefs(m.Value, f)
		}
	case fhir.KindArray:
		for _, e := range v.Array {
			walkRefs(e, f)
		}
	}
}

// TestDeterministic: mapping the same record twice gives the same bytes,
// whatever order the book's sessions come in.
func TestDeterministic(t *testing.T) {
	b := loadCourse(t, "course-spravato")
	m := testMapper()
	for _, r := range b.records {
		a, _, err := m.ToFHIR(b, r)
		if err != nil {
			t.Fatal(err)
		}
		c, _, _ := m.ToFHIR(b, r)
		if fmt.Sprint(encodeAll(a)) != fmt.Sprint(encodeAll(c)) {
			t.Errorf("%v: two mappings differ", r.RecordHeader())
		}
	}
}

func encodeAll(vs []*fhir.Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v.Encode())
	}
	return out
}

func TestResourceID(t *testing.T) {
	a := ResourceID("acme", KindClient, "c1")
	if a != ResourceID("acme", KindClient, "c1") {
		t.Fatal("not deterministic")
	}
	for _, o := range []string{ResourceID("acme2", KindClient, "c1"), ResourceID("acme", KindCourse, "c1"), ResourceID("acme", KindClient, "c1", "x"), ResourceID("acm", KindClient, "ec1")} {
		if o == a {
			t.Errorf("collision %s", o)
		}
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("%s is not a v5 UUID", a)
	}
}

func TestCodesTable(t *testing.T) {
	for _, c := range Codes {
		if c.System == "" || c.Code == "" || c.Status == "" {
			t.Errorf("incomplete code %+v", c)
		}
		if strings.HasPrefix(c.System, CanonicalBase) != (c.Status == Local) {
			t.Errorf("%s: local status iff a project system", c.Concept)
		}
	}
}

// TestNoSharedNodes: no two places in a mapping's resources hold the same
// node, so a caller may change one resource without changing another.
func TestNoSharedNodes(t *testing.T) {
	b := loadCourse(t, "course-iv")
	m := testMapper()
	for _, r := range b.records {
		res, _, err := m.ToFHIR(b, r)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[*fhir.Value]string{}
		var walk func(v *fhir.Value, path string)
		walk = func(v *fhir.Value, path string) {
			if prev, ok := seen[v]; ok {
				t.Errorf("%v: %s and %s are the same node", r.RecordHeader(), prev, path)
				return
			}
			seen[v] = path
			for _, mb := range v.Members {
				walk(mb.Value, path+"."+mb.Key)
			}
			for i, e := range v.Array {
				walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
		for _, v := range res {
			walk(v, v.GetString("resourceType"))
		}
	}
}

// TestLocalCodesPublished: every code of a project CodeSystem in the
// mapped courses is a concept of the published CodeSystem, and every
// project extension has a published StructureDefinition.
func TestLocalCodesPublished(t *testing.T) {
	concepts := map[string]map[string]bool{}
	published := func(system string) (map[string]bool, bool) {
		if c, ok := concepts[system]; ok {
			return c, c != nil
		}
		concepts[system] = nil
		a, ok := ig.Lookup(system)
		if !ok {
			return nil, false
		}
		var cs struct {
			Concept []struct{ Code string } `json:"concept"`
		}
		if err := json.Unmarshal(a.JSON, &cs); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, c := range cs.Concept {
			set[c.Code] = true
		}
		concepts[system] = set
		return set, true
	}
	reported := map[string]bool{}
	for _, name := range fullCourses {
		for _, v := range mapAll(t, testMapper(), loadCourse(t, name)) {
			var walk func(*fhir.Value)
			walk = func(n *fhir.Value) {
				if sys := n.GetString("system"); strings.HasPrefix(sys, CanonicalBase+"/CodeSystem/") && n.Get("code") != nil {
					code := n.GetString("code")
					set, ok := published(sys)
					switch {
					case !ok && !reported[sys]:
						reported[sys] = true
						t.Errorf("%s is used but not published", sys)
					case ok && !set[code] && !reported[sys+"#"+code]:
						reported[sys+"#"+code] = true
						t.Errorf("%s#%s is used but not in the published CodeSystem", sys, code)
					}
				}
				if url := n.GetString("url"); strings.HasPrefix(url, CanonicalBase+"/StructureDefinition/") && !reported[url] {
					if _, ok := ig.Lookup(url); !ok {
						reported[url] = true
						t.Errorf("extension %s is used but not published", url)
					}
				}
				for _, m := range n.Members {
					walk(m.Value)
				}
				for _, e := range n.Array {
					walk(e)
				}
			}
			walk(v)
		}
	}
}
