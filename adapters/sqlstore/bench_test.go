package sqlstore

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
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
	s, err := Open(b.Context(), newPGSchema(b, postgresDSN(b)))
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
