package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// recordFiles lists testdata/records, the documented examples.
func recordFiles(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.json", "*.ndjson"} {
		m, err := filepath.Glob(filepath.Join("..", "testdata", "records", pat))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Fatal("no files in testdata/records")
	}
	return out
}

// loadRecords decodes one example file (a record, an array of records
// or NDJSON), failing on any reject.
func loadRecords(t testing.TB, path string) []Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return recs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		items := []json.RawMessage{raw}
		if raw[0] == '[' {
			if err := json.Unmarshal(raw, &items); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		for _, it := range items {
			rec, err := Decode(it)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			recs = append(recs, rec)
		}
	}
}

func TestExamplesDecode(t *testing.T) {
	for _, path := range recordFiles(t) {
		recs := loadRecords(t, path)
		if len(recs) == 0 {
			t.Errorf("%s: no records", path)
		}
	}
}

// A full course file holds what the README promises.
func TestExampleCourses(t *testing.T) {
	courses := map[string]bool{"course-iv.ndjson": true, "course-im.ndjson": false, "course-lozenge.ndjson": false, "course-spravato.ndjson": false}
	for name, wantConsent := range courses {
		recs := loadRecords(t, filepath.Join("..", "testdata", "records", name))
		n := map[string]int{}
		for _, r := range recs {
			switch r := r.(type) {
			case *Session:
				n["session."+r.Type]++
			default:
				n[string(r.RecordHeader().Kind)]++
			}
		}
		want := map[string]int{"client": 1, "practitioner": 3, "course": 1, "session.consultation": 1, "session.preparation": 2,
			"session.dosing": 6, "session.integration": 6, "session.maintenance": 2, "note": 6, "screening": 2}
		for k, v := range want {
			if n[k] != v {
				t.Errorf("%s: %d %s, want %d", name, n[k], k, v)
			}
		}
		if got := n["consent"] == 1; got != wantConsent {
			t.Errorf("%s: consent present = %v, want %v", name, got, wantConsent)
		}
	}
}

func TestDecodeKinds(t *testing.T) {
	for _, k := range Kinds {
		if _, ok := recordTypes[k]; !ok {
			t.Errorf("kind %s has no struct", k)
		}
	}
	rec, err := Decode([]byte(`{"kind":"note","id":"n.1","session":"s-1","author":"t_1","date":"2026-01-02","text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Note{Header: Header{Kind: KindNote, ID: "n.1"}, Session: "s-1", Author: "t_1", Date: "2026-01-02", Text: "x"}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("got %#v, want %#v", rec, want)
	}
}

const okPractitioner = `"name":{"family":"Lee"},"role":"prescriber","credential":"MD"`

// decodeProblemCases are records Decode rejects, with the problems it
// must list; schema_test.go checks the JSON Schema rejects them too,
// except where only the decoder can see the problem.
// wantProblem is a problem a decode case expects: its field, and a
// substring of its message.
type wantProblem struct{ Field, Message string }

var decodeProblemCases = []struct {
	name string
	in   string
	want []wantProblem // Message is a substring
}{
	{"not json", `{"kind":`, []wantProblem{{"", "invalid JSON"}}},
	{"not an object", `[1]`, []wantProblem{{"", "must be a JSON object, not an array"}}},
	{"trailing data", `{"kind":"practitioner","id":"p",` + okPractitioner + `} {}`, []wantProblem{{"", "trailing data"}}},
	{"no kind", `{"id":"x"}`, []wantProblem{{"kind", "required: one of client, practitioner"}}},
	{"kind not a string", `{"kind":3}`, []wantProblem{{"kind", "must be a string"}}},
	{"unknown kind", `{"kind":"patient","id":"x"}`, []wantProblem{{"kind", `unknown kind "patient": one of client, practitioner, course, session, screening, observation, note, consent`}}},
	{"unknown field named", `{"kind":"practitioner","id":"p",` + okPractitioner + `,"fax":"1"}`, []wantProblem{{"fax", "unknown field; allowed: kind, id, updated, name, role"}}},
	{"field names are case-sensitive", `{"kind":"practitioner","ID":"p",` + okPractitioner + `}`, []wantProblem{{"ID", "unknown field"}, {"id", "required"}}},
	{"nested unknown field", `{"kind":"practitioner","id":"p","name":{"family":"Lee","middle":"Q"},"role":"prescriber","credential":"MD"}`, []wantProblem{{"name.middle", "unknown field; allowed: family, given, prefix, suffix"}}},
	{"duplicate field", `{"kind":"practitioner","id":"p","id":"q",` + okPractitioner + `}`, []wantProblem{{"id", "duplicate field"}}},
	{"wrong types", `{"kind":"client","id":"c","name":{"family":1,"given":"Ann"},"birth_date":19800101,"sud_program":"no"}`,
		[]wantProblem{{"name.family", "must be a string, not a number"}, {"name.given", "must be an array, not a string"}, {"birth_date", "must be a string, not a number"}, {"sud_program", "must be true or false, not a string"}}},
	{"missing required", `{"kind":"course","id":"c"}`, []wantProblem{{"client", "required"}, {"prescriber", "required"}, {"therapist", "required"}, {"indications", "required"}, {"route", "required"}, {"planned", "required"}, {"status", "required"}, {"start", "required"}}},
	{"required nested", `{"kind":"course","id":"c","client":"x","prescriber":"p","therapist":"t","indications":[],"route":"iv","planned":{"dosing":6},"status":"active","start":"2026-01-01"}`,
		[]wantProblem{{"indications", "must not be empty"}, {"planned.preparation", "required"}, {"planned.integration", "required"}}},
	{"empty required string", `{"kind":"note","id":"n","session":"","author":"a","date":"2026-01-01","text":""}`, []wantProblem{{"session", "must not be empty"}, {"text", "must not be empty"}}},
	{"null", `{"kind":"client","id":"c","name":{"family":"X"},"birth_date":"1980-01-01","sex":null}`, []wantProblem{{"sex", "must not be null"}}},
	{"bad enums list allowed values", `{"kind":"practitioner","id":"p","name":{"family":"Lee"},"role":"nurse","credential":"LPN"}`,
		[]wantProblem{{"role", `"nurse" is not allowed: one of prescriber, therapist, administrator`}, {"credential", `"LPN" is not allowed: one of MD, DO, NP, PA, RN, CRNA, LCSW, LCPC, LMFT, psychologist`}}},
	{"bad enum in array", `{"kind":"observation","id":"o","session":"s","time":"2026-01-01T10:00:00Z","side_effects":["nausea","headache"],"red_flags":["mania","x"]}`,
		[]wantProblem{{"side_effects[1]", `"headache" is not allowed`}, {"red_flags[1]", `"x" is not allowed: one of mania, confusion, dependence`}}},
	{"bad dates", `{"kind":"consent","id":"k","client":"c","recipient":"p","scope":"process_notes","decision":"permit","start":"2026-13-01","end":"2026-01-01T00:00:00Z","signed":"01/02/2026"}`,
		[]wantProblem{{"start", `"2026-13-01" is not a date: want YYYY-MM-DD`}, {"end", "is not a date"}, {"signed", "is not a date"}}},
	{"bad date-times", `{"kind":"session","id":"s","course":"c","type":"dosing","status":"held","planned_start":"2026-01-01","actual_start":"2026-01-01T10:00:00","updated":"yesterday"}`,
		[]wantProblem{{"updated", "not a date-time"}, {"planned_start", `"2026-01-01" is not a date-time: want RFC 3339`}, {"actual_start", "not a date-time"}}},
	{"lower-case date-time", `{"kind":"observation","id":"o","session":"s","time":"2026-01-01t10:00:00z"}`, []wantProblem{{"time", "not a date-time"}}},
	{"date or date-time", `{"kind":"screening","id":"x","client":"c","date":"2026-02-30","performed_by":"p"}`, []wantProblem{{"date", "neither a date"}}},
	{"npi length", `{"kind":"practitioner","id":"p",` + okPractitioner + `,"npi":"12345"}`, []wantProblem{{"npi", "want 10 digits"}}},
	{"npi luhn", `{"kind":"practitioner","id":"p",` + okPractitioner + `,"npi":"1234567890"}`, []wantProblem{{"npi", "check digit"}}},
	{"negative counts", `{"kind":"course","id":"c","client":"x","prescriber":"p","therapist":"t","indications":["mdd"],"route":"iv","planned":{"preparation":-1,"dosing":6,"integration":6},"status":"active","start":"2026-01-01","maintenance_weeks":-4}`,
		[]wantProblem{{"planned.preparation", "must not be negative (got -1)"}, {"maintenance_weeks", "must not be negative"}}},
	{"integer fields", `{"kind":"course","id":"c","client":"x","prescriber":"p","therapist":"t","indications":["mdd"],"route":"iv","planned":{"preparation":1.5,"dosing":"6","integration":6},"status":"active","start":"2026-01-01"}`,
		[]wantProblem{{"planned.preparation", "must be an integer, not 1.5"}, {"planned.dosing", "must be an integer, not a string"}}},
	{"dose", `{"kind":"session","id":"s","course":"c","type":"dosing","status":"held","planned_start":"2026-01-01T10:00:00Z","dose":{"drug":"ketamine","mg":-5,"administered_by":"bad id"}}`,
		[]wantProblem{{"dose.mg", "must not be negative"}, {"dose.administered_by", "not a valid id"}, {"dose.route", "required"}}},
	{"dissociation scale", `{"kind":"observation","id":"o","session":"s","time":"2026-01-01T10:00:00Z","dissociation":11}`, []wantProblem{{"dissociation", "between 0 and 10 (got 11)"}}},
	{"ids", `{"kind":"note","id":"` + strings.Repeat("a", 65) + `","session":"s/1","author":"a b","date":"2026-01-01","text":"x"}`,
		[]wantProblem{{"id", "not a valid id"}, {"session", `"s/1" is not a valid id`}, {"author", "not a valid id"}}},
	{"empty id", `{"kind":"note","id":"","session":"s","author":"a","date":"2026-01-01","text":"x"}`, []wantProblem{{"id", "must not be empty"}}},
	{"clearance nulls and missing", `{"kind":"screening","id":"x","client":"c","date":"2026-01-01","performed_by":"p","clearance":{"cardiovascular":null,"psychotic_disorder":false,"bipolar_i":"no","decision":"ok"}}`,
		[]wantProblem{{"clearance.cardiovascular", "must not be null"}, {"clearance.bipolar_i", "must be true or false"}, {"clearance.decision", "one of cleared, not_cleared, deferred"}, {"clearance.substance_misuse", "required"}, {"clearance.pregnancy", "required"}, {"clearance.contraindicated_medications", "required"}}},
	{"instrument", `{"kind":"screening","id":"x","client":"c","date":"2026-01-01","performed_by":"p","instruments":[{"instrument":"phq9","items":[1,2]},{"instrument":"madrs","items":["a"],"sex":"f"}]}`,
		[]wantProblem{{"instruments[1].instrument", "one of phq9, gad7, pcl5, cssrs, auditc, dast10"}, {"instruments[1].items[0]", "must be an integer"}, {"instruments[1].sex", "one of female, male"}}},
	{"too deep", `{"kind":"client","id":"c","name":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, []wantProblem{{"", "nested deeper"}}},
	// U+0000 maps on SQLite and fails on PostgreSQL: refused at the door.
	{"NUL in text", `{"kind":"note","id":"n","session":"s","author":"a","date":"2026-01-01","text":"a\u0000b"}`, []wantProblem{{"text", "U+0000"}}},
	{"NUL", `{"kind":"note","id":"n","session":"s","author":"a","date":"2026-01-01","text":"a\u0000b","x\u0000":1}`,
		[]wantProblem{{"text", "U+0000"}, {"", `field name "x\x00" holds U+0000`}}},
	{"NUL in a list and an id", `{"kind":"session","id":"s\u0000","course":"c","type":"dosing","status":"planned","planned_start":"2026-01-01T10:00:00Z","practitioners":["p","\u0000"]}`,
		[]wantProblem{{"id", "U+0000"}, {"practitioners[1]", "U+0000"}}},
}

func TestDecodeProblems(t *testing.T) {
	for _, tt := range decodeProblemCases {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Decode([]byte(tt.in))
			if rec != nil {
				t.Errorf("got a record %#v with the error", rec)
			}
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RecordError", err)
			}
			for _, w := range tt.want {
				found := false
				for _, p := range re.Problems {
					if p.Field == w.Field && strings.Contains(p.Message, w.Message) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem %q: %q in\n%v", w.Field, w.Message, re.Problems)
				}
			}
			if len(re.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d: %v", len(re.Problems), len(tt.want), re.Problems)
			}
			if !strings.HasPrefix(err.Error(), "invalid record") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestRecordErrorNamesTheRecord(t *testing.T) {
	_, err := Decode([]byte(`{"kind":"practitioner","id":"p-1",` + okPractitioner + `,"npi":"1"}`))
	var re *RecordError
	if !errors.As(err, &re) || re.Record != (Ref{KindPractitioner, "p-1"}) {
		t.Fatalf("got %#v", err)
	}
	if got, want := err.Error(), `invalid record practitioner "p-1": npi: "1" is not an NPI: want 10 digits`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNPI(t *testing.T) {
	// 1234567893 is the worked example in CMS's NPI check-digit note.
	for _, ok := range []string{"1234567893", "1245319599"} {
		if msg := checkNPI(ok); msg != "" {
			t.Errorf("%s: %s", ok, msg)
		}
	}
	for _, bad := range []string{"1234567890", "123456789", "12345678901", "123456789a"} {
		if checkNPI(bad) == "" {
			t.Errorf("%s accepted", bad)
		}
	}
}

// FuzzDecode: Decode never panics, and returns exactly one of a record
// and an error (the reader of whole files and bodies, which calls it, is
// fuzzed in adapters/practice: FuzzRead). Seeded from testdata/records and
// the reject table.
func FuzzDecode(f *testing.F) {
	for _, path := range recordFiles(f) {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) != "" {
				f.Add([]byte(line))
			}
		}
		f.Add(b)
	}
	for _, tc := range decodeProblemCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Decode(data)
		if (rec == nil) == (err == nil) {
			t.Fatalf("record %v and error %v", rec, err)
		}
	})
}

func BenchmarkDecodeObservation(b *testing.B) {
	line := []byte(`{"kind":"observation","id":"spr-s05-o2","session":"spr-s05-dosing1","time":"2026-04-13T10:40:00-05:00","performer":"spr-administrator","phase":"during","vitals":{"systolic":148,"diastolic":92,"heart_rate":80,"spo2":97,"respiratory_rate":13},"dissociation":6,"side_effects":["dissociation_confusion","bp_elevation","nausea"],"comment":"BP at 40 min after first device."}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCourse(b *testing.B) {
	book := NewBook()
	var recs []Record
	for _, r := range loadRecords(b, filepath.Join("..", "testdata", "records", "course-spravato.ndjson")) {
		book.Add(r)
		recs = append(recs, r)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			Check(book, r, CheckConfig{})
		}
	}
}
