package ehr

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// The sync's speed (issue 11): a backlog of Observations written to an
// EHR by the outbound worker, against a plain Go client writing the same
// Observations directly to the same EHR, in one run. Run with
//
//	go test -run '^$' -bench SyncDrain -benchtime 1x ./adapters/ehr
//
// (KAPBRIDGE_TEST_EHR_URL set for the Medplum half; KAPBRIDGE_BENCH_N
// changes the backlog from 10,000). Each sub-benchmark reports obs/s.

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("KAPBRIDGE_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

// benchObservation is the i-th Observation of the backlog: a vital sign
// with its own practice identifier.
func benchObservation(run string, i int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:kapbridge:bench:%s","value":"o-%d"}],`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/bench"},`+
		`"effectiveDateTime":"2026-01-15T10:40:00-05:00","valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, run, i, 60+i%40)
}

// benchDirect is the plain client: one POST per Observation, in order,
// through the connector's own Client (so auth and transport are the
// same as the worker's).
func benchDirect(b *testing.B, c *Client, n int) float64 {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	for i := range n {
		if _, err := c.Do(b.Context(), &Request{Method: http.MethodPost, URL: "Observation", Body: benchObservation(run, i)}); err != nil {
			b.Fatalf("direct write %d: %v", i, err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func BenchmarkSyncDrain(b *testing.B) {
	n := benchN()
	b.Run("sandbox-full/direct", func(b *testing.B) {
		for range b.N {
			c, _ := inboundSandbox(b, "full")
			b.ReportMetric(benchDirect(b, c, n), "obs/s")
		}
	})
	if base := os.Getenv("KAPBRIDGE_TEST_EHR_URL"); base != "" {
		b.Run("medplum/direct", func(b *testing.B) {
			c, err := NewClient(Config{BaseURL: base, Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				b.ReportMetric(benchDirect(b, c, n), "obs/s")
			}
		})
	}
}
