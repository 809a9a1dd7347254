package practice

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWriteSynthetic writes a synthetic import when KAPBRIDGE_SYNTHETIC
// names a file (KAPBRIDGE_SYNTHETIC_N observations, default 10,000): the
// input of the command-line benchmarks in BENCHMARKS.md.
func TestWriteSynthetic(t *testing.T) {
	path := os.Getenv("KAPBRIDGE_SYNTHETIC")
	if path == "" {
		t.Skip("KAPBRIDGE_SYNTHETIC not set: this only writes a synthetic import file for the benchmarks, on request (see BENCHMARKS.md)")
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
// transaction per record, the default 256 in flight), and reports
// records/s.
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
	im := &Importer{Applier: testApplier(s)}
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

// TestImportMemory measures the resident memory of the real binary
// importing a large synthetic NDJSON file (KAPBRIDGE_BENCH_RSS_MB of it,
// e.g. 200): it samples the child's VmHWM (peak RSS) from
// /proc/<pid>/status while it runs, for at most KAPBRIDGE_BENCH_SECONDS
// (default 120; the whole file at the measured import rate takes far
// longer), and logs peak RSS, records done and the rate.
func TestImportMemory(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KAPBRIDGE_BENCH_RSS_MB"))
	if mb <= 0 {
		t.Skip("KAPBRIDGE_BENCH_RSS_MB not set: a memory measurement of minutes, run on request for BENCHMARKS.md, not a CI test")
	}
	secs := 120
	if s, _ := strconv.Atoi(os.Getenv("KAPBRIDGE_BENCH_SECONDS")); s > 0 {
		secs = s
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kapbridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kapbridge").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	in := filepath.Join(dir, "obs.ndjson")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	// About 215 bytes per observation line.
	if err := WriteSyntheticObservations(f, mb<<20/215); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(in)
	cmd := exec.Command(bin, "import", "--progress", "lines", "--progress-interval", "10s", "--store", filepath.Join(dir, "k.db"), in)
	var stderr, stdout strings.Builder
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	peak := 0
	deadline := time.After(time.Duration(secs) * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	finished := false
loop:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("import: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			finished = true
			break loop
		case <-deadline:
			cmd.Process.Signal(os.Interrupt)
			<-done
			break loop
		case <-tick.C:
			if b, err := os.ReadFile(status); err == nil {
				if kb := vmHWM(string(b)); kb > peak {
					peak = kb
				}
			}
		}
	}
	t.Logf("input %.0f MB; finished: %v; peak RSS (VmHWM) %.1f MB\n%s%s", float64(fi.Size())/(1<<20), finished, float64(peak)/1024, stdout.String(), lastLines(stderr.String(), 3))
	if peak > 200<<10 {
		t.Errorf("peak RSS %.1f MB, over 200 MB", float64(peak)/1024)
	}
}

func vmHWM(status string) int {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
