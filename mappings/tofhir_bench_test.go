package mappings

import (
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// BenchmarkMapFullCourse maps every record of a full course (consultation
// and clearance, preparation, six dosings with integration between,
// maintenance, notes) to FHIR; resources/op says how many it makes.
func BenchmarkMapFullCourse(b *testing.B) {
	for _, name := range fullCourses {
		b.Run(name, func(b *testing.B) {
			bk := loadCourse(b, name)
			m := testMapper()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n = 0
				for _, r := range bk.records {
					res, _, err := m.ToFHIR(bk, r)
					if err != nil {
						b.Fatal(err)
					}
					n += len(res)
				}
			}
			b.ReportMetric(float64(n), "resources/op")
		})
	}
}

// BenchmarkMapCourseRecord maps the course record alone: the CarePlan with
// one activity per session, CareTeam, Conditions, Goals, Provenance.
func BenchmarkMapCourseRecord(b *testing.B) {
	bk := loadCourse(b, "course-iv")
	m := testMapper()
	var course Record
	for _, r := range bk.records {
		if r.RecordHeader().Kind == KindCourse {
			course = r
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.ToFHIR(bk, course); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObservationMapValidate maps one dosing-session observation
// record (vitals, dissociation, side effects) and validates every resource
// it makes against base R4, as the import path does.
func BenchmarkObservationMapValidate(b *testing.B) {
	bk := loadCourse(b, "course-iv")
	m := testMapper()
	var obs Record
	best := 0
	for _, r := range bk.records {
		if o, ok := r.(*Observation); ok {
			res, _, _ := m.ToFHIR(bk, o)
			if len(res) > best {
				best, obs = len(res), o
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := m.ToFHIR(bk, obs)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range res {
			if issues := fhir.Validate(v); len(issues) > 0 {
				b.Fatal(issues)
			}
		}
	}
	b.ReportMetric(float64(best), "resources/op")
}

// BenchmarkObservationMap maps the same observation record without
// validating, to tell the mapping's cost from the validator's.
func BenchmarkObservationMap(b *testing.B) {
	bk := loadCourse(b, "course-iv")
	m := testMapper()
	var obs Record
	best := 0
	for _, r := range bk.records {
		if o, ok := r.(*Observation); ok {
			res, _, _ := m.ToFHIR(bk, o)
			if len(res) > best {
				best, obs = len(res), o
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.ToFHIR(bk, obs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObservationRecords maps and validates every observation record
// of the four full courses (vitals before, during and at discharge,
// dissociation, side effects); records/s is the throughput on one core.
func BenchmarkObservationRecords(b *testing.B) { observationRecords(b, true) }

// BenchmarkObservationRecordsMapOnly is ObservationRecords without the
// validation: what the mapping alone costs, the floor under the
// pipeline's rate.
func BenchmarkObservationRecordsMapOnly(b *testing.B) { observationRecords(b, false) }

func observationRecords(b *testing.B, validate bool) {
	type item struct {
		bk  *memBook
		rec Record
	}
	var items []item
	for _, name := range fullCourses {
		bk := loadCourse(b, name)
		for _, r := range bk.records {
			if _, ok := r.(*Observation); ok {
				items = append(items, item{bk, r})
			}
		}
	}
	m := testMapper()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, it := range items {
			res, _, err := m.ToFHIR(it.bk, it.rec)
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range res {
				if !validate {
					break
				}
				if issues := fhir.Validate(v); len(issues) > 0 {
					b.Fatal(issues)
				}
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
