package mappings

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// fuzzSeedRecords are the record lines of the full courses.
func fuzzSeedRecords(f *testing.F) [][]byte {
	var out [][]byte
	for _, name := range fullCourses {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "records", name+".ndjson"))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	return out
}

// FuzzToFHIR: any record Decode accepts either maps to resources that are
// valid R4, or fails with ErrInvalidRecord / ErrUnresolved; never a panic.
func FuzzToFHIR(f *testing.F) {
	lines := fuzzSeedRecords(f)
	for _, l := range lines {
		f.Add(l)
	}
	book := loadCourse(f, "course-iv")
	m := testMapper()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			return
		}
		res, _, err := m.ToFHIR(book, r)
		if err != nil {
			return
		}
		for _, v := range res {
			if _, _, err := fhir.ParseResource(v.Encode()); err != nil {
				t.Fatalf("%s from %s: %v", v.GetString("resourceType"), data, err)
			}
		}
	})
}

// FuzzFromFHIR: any JSON the parser accepts goes through FromFHIR without
// a panic, and each resource either contributes to a record or is kept.
func FuzzFromFHIR(f *testing.F) {
	book := loadCourse(f, "course-iv")
	m := testMapper()
	for _, r := range book.records {
		res, _, err := m.ToFHIR(book, r)
		if err != nil {
			f.Fatal(err)
		}
		for _, v := range res {
			f.Add(v.Encode())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := fhir.ParseJSON(data, fhir.DefaultLimits)
		if err != nil {
			return
		}
		in := m.FromFHIR(book, []*fhir.Value{v})
		if v.Kind == fhir.KindObject && len(in.Records) == 0 && len(in.Kept) == 0 {
			switch v.GetString("resourceType") {
			case "Observation", "Flag", "MedicationAdministration", "CarePlan":
				t.Fatalf("%s neither mapped nor kept", data)
			}
			if v.GetString("resourceType") != "" {
				t.Fatalf("%s neither mapped nor kept", data)
			}
		}
	})
}
