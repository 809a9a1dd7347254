package sqlstore

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// benchWriters is the number of concurrent callers the create benchmarks
// aim for (b.SetParallelism multiplies GOMAXPROCS).
const benchWriters = 32

// benchBody is a Patient of about 1 KB, the size of a typical resource.
func benchBody(id string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"},`+
		`"identifier":[{"system":"urn:oid:1.2.276.0.76.4.8","value":%q}],"active":true,`+
		`"name":[{"use":"official","family":"Mustermann","given":["Erika","Maria"]}],"gender":"female","birthDate":"1964-08-12",`+
		`"address":[{"line":["Heidestraße 17"],"city":"Köln","postalCode":"51147","country":"DE"}],"text":{"status":"generated","div":"%s"}}`,
		id, "mrn-"+id, strings.Repeat("x", 600))
}

func openBenchSQLite(b *testing.B) fhir.Store {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func openBenchPostgres(b *testing.B) fhir.Store {
	s, err := Open(b.Context(), sqltest.FreshSchema(b, postgresDSN(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchCreate measures durable single-resource creates (each its own
// Update, with one identifier) from benchWriters concurrent callers.
func benchCreate(b *testing.B, s fhir.Store) {
	var n atomic.Int64
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := b.Context()
		for pb.Next() {
			id := fmt.Sprintf("p%d", n.Add(1))
			v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}, VersionID: 1,
				LastUpdated: time.Now(), JSON: benchBody(id)}
			idx := fhir.Index{Identifiers: []fhir.Identifier{{System: "urn:oid:1.2.276.0.76.4.8", Value: "mrn-" + id}}}
			if err := s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, idx) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// benchRead measures parallel Reads of random resources among 1000.
func benchRead(b *testing.B, s fhir.Store) {
	const count = 1000
	ctx := b.Context()
	err := s.Update(ctx, func(tx fhir.Tx) error {
		for i := range count {
			id := fmt.Sprintf("r%d", i)
			v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}, VersionID: 1,
				LastUpdated: time.Now(), JSON: benchBody(id)}
			if err := tx.Put(ctx, v, fhir.Index{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(7919) % count // a stride that visits all of them
			if _, err := s.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: fmt.Sprintf("r%d", i)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

func BenchmarkSQLiteCreateParallel(b *testing.B)   { benchCreate(b, openBenchSQLite(b)) }
func BenchmarkSQLiteRead(b *testing.B)             { benchRead(b, openBenchSQLite(b)) }
func BenchmarkPostgresCreateParallel(b *testing.B) { benchCreate(b, openBenchPostgres(b)) }
func BenchmarkPostgresRead(b *testing.B)           { benchRead(b, openBenchPostgres(b)) }

// BenchmarkSQLiteIndexRows measures the ceiling the search index puts on
// writes to SQLite: only the index rows of observation records (a blood
// pressure panel, heart rate, SpO2 and a dissociation score, extracted by
// package search from real resources) inserted as the writer does at the
// end of each group-commit batch (64 records a batch), with nothing else
// written. Every record carries the same values, so the rows land at the
// same edges of the B-trees: a best case. It reports rows/s and the
// records/s that index writing alone would allow.
func BenchmarkSQLiteIndexRows(b *testing.B) {
	st := openBenchSQLite(b).(*sqliteStore)
	docs := []string{
		`{"resourceType":"Observation","id":"bp","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/bp"],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
			"identifier":[{"system":"http://kapbridge.org/fhir/id/observation","value":"syn-o1-bp"}],"status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/syn-client"},"encounter":{"reference":"Encounter/syn-s1"},
			"effectiveDateTime":"2026-01-05T10:00:00Z","performer":[{"reference":"Practitioner/syn-prescriber"}],
			"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
				{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
		`{"resourceType":"Observation","id":"hr","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/heartrate"],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
			"identifier":[{"system":"http://kapbridge.org/fhir/id/observation","value":"syn-o1-hr"}],"status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/syn-client"},"encounter":{"reference":"Encounter/syn-s1"},
			"effectiveDateTime":"2026-01-05T10:00:00Z","performer":[{"reference":"Practitioner/syn-prescriber"}],
			"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		`{"resourceType":"Observation","id":"spo2","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/oxygensat"],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
			"identifier":[{"system":"http://kapbridge.org/fhir/id/observation","value":"syn-o1-spo2"}],"status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]},"subject":{"reference":"Patient/syn-client"},"encounter":{"reference":"Encounter/syn-s1"},
			"effectiveDateTime":"2026-01-05T10:00:00Z","performer":[{"reference":"Practitioner/syn-prescriber"}],
			"valueQuantity":{"value":97,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}`,
		`{"resourceType":"Observation","id":"diss","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
			"identifier":[{"system":"http://kapbridge.org/fhir/id/observation","value":"syn-o1-diss"}],"status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"survey"}]}],
			"code":{"coding":[{"system":"http://kapbridge.org/fhir/CodeSystem/kap-observation","code":"dissociation"}]},"subject":{"reference":"Patient/syn-client"},"encounter":{"reference":"Encounter/syn-s1"},
			"effectiveDateTime":"2026-01-05T10:00:00Z","performer":[{"reference":"Practitioner/syn-prescriber"}],
			"valueInteger":3}`,
	}
	var entries [][]fhir.IndexEntry
	rowsPerRecord := 0
	for _, d := range docs {
		res, err := fhir.ParseJSON([]byte(d), fhir.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		es := search.Extract(res, "")
		entries = append(entries, es)
		eachIndexRow(es, nil, func(int, []any) { rowsPerRecord++ })
	}
	const batch = 64
	seq := int64(1) << 40
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += batch {
		err := st.Update(b.Context(), func(fhir.Tx) error {
			// On the writer goroutine: fill the buffer the batch's end
			// flushes, as sqliteTx.Put does.
			for range min(batch, b.N-done) {
				for _, es := range entries {
					seq++
					eachIndexRow(es, []any{fhir.DefaultTenant, "Observation", seq}, func(t int, row []any) {
						st.idx.rows[t] = append(st.idx.rows[t], row)
					})
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*rowsPerRecord)/el, "rows/s")
	b.ReportMetric(float64(b.N)/el, "records/s")
	b.ReportMetric(float64(rowsPerRecord), "rows/record")
}
