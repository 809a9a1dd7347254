package practice

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestWriteSynthetic writes a synthetic import when KAPBRIDGE_SYNTHETIC
// names a file (KAPBRIDGE_SYNTHETIC_N observations, default 10,000): the
// input of the command-line benchmarks in BENCHMARKS.md.
func TestWriteSynthetic(t *testing.T) {
	path := os.Getenv("KAPBRIDGE_SYNTHETIC")
	if path == "" {
		t.Skip("KAPBRIDGE_SYNTHETIC not set")
	}
	n := 10000
	if s := os.Getenv("KAPBRIDGE_SYNTHETIC_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteSyntheticObservations(f, n); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkImportObservations imports b.N synthetic observation records
// into a fresh SQLite file store, as kapbridge import does (one durable
// transaction per record, 16 in flight), and reports records/s.
func BenchmarkImportObservations(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "obs.ndjson")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteSyntheticObservations(f, b.N); err != nil {
		b.Fatal(err)
	}
	f.Close()
	s := openTestStore(b)
	im := &Importer{Applier: testApplier(s), Workers: 16}
	file, err := FileInput(in, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	sum, err := im.Import(context.Background(), []ImportFile{file})
	el := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if sum.Rejected > 0 || sum.Pending > 0 {
		b.Fatalf("%+v", sum)
	}
	b.ReportMetric(float64(sum.Records)/el.Seconds(), "records/s")
}
