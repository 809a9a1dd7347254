package ehr

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
)

// The sync's speed (issue 11): a backlog of Observations drained to an
// EHR by the outbound worker, against a plain Go client writing the same
// Observations directly to the same EHR, in one run. Run with
//
//	go test -run '^$' -bench SyncDrain -benchtime 1x ./adapters/ehr
//
// (KAPBRIDGE_TEST_EHR_URL set for the Medplum half; KAPBRIDGE_BENCH_N
// changes the backlog from 10,000). Each sub-benchmark reports obs/s;
// the drain also the highest live heap sampled while it ran (MB-peak).
// The worker sends creates in batch Bundles where the EHR declares them
// (both EHRs here do); KAPBRIDGE_BENCH_SINGLE=1 adds a drain without.

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("KAPBRIDGE_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

// benchObservation is the i-th Observation of the backlog: a vital sign
// of the patient with its own identifier.
func benchObservation(run, patient string, i int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Observation","status":"final","identifier":[{"system":"`+mappings.NSPracticeRecordIDs+`/bench/observation","value":"%s-%d"}],`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/%s"},`+
		`"effectiveDateTime":"2026-01-15T10:40:00-05:00","valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, run, i, patient, 60+i%40)
}

func benchRun() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

// benchDirect is the plain client: one POST per Observation, in order,
// through the connector's own Client (the same auth and transport as the
// worker's).
func benchDirect(b *testing.B, c *Client, patient string, n int) float64 {
	run := benchRun()
	start := time.Now()
	for i := range n {
		if _, err := c.Do(b.Context(), &Request{Method: http.MethodPost, URL: "Observation", Body: benchObservation(run, patient, i)}); err != nil {
			b.Fatalf("direct write %d: %v", i, err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// benchDrain fills a SQLite gateway with the patient (MRN mrn) and n
// Observations (outbox rows by the change hook, as every write makes
// them), then times the worker draining them to the EHR c talks to. It
// returns obs/s and the peak heap in use (MB) sampled every 50 ms.
func benchDrain(b *testing.B, c *Client, caps *Capabilities, mrn string, n int, single bool) (float64, float64) {
	ctx := b.Context()
	st, err := sqlstore.Open(ctx, filepath.Join(b.TempDir(), "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sync := st.(syncstore.Store)
	w := write.Writer{Changed: syncstore.Enqueue}
	// The connection exists before the backlog is written, as when an
	// EHR was down or the worker stopped: a resource first written before
	// its connection was added is searched for before it is created
	// (Outbound.newerThanConnection), which is the backfill's path, not
	// a backlog's.
	conn := syncstore.Connection{Name: "bench", Tenant: fhir.DefaultTenant, BaseURL: c.Base().String(), ClientID: testClientID, KeyFile: "(bench)",
		Scopes: "system/*.cruds", MRNSystem: testMRNSystem, Created: time.Now()}
	if err := sync.AddConnection(ctx, conn); err != nil {
		b.Fatal(err)
	}
	put := func(tx fhir.Tx, typ, id string, body []byte) error {
		res, err := fhir.ParseJSON(body, fhir.StoredLimits)
		if err != nil {
			return err
		}
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}
		_, err = w.Put(ctx, tx, k, fhir.Version{Key: k}, res)
		return err
	}
	if err := st.Update(ctx, func(tx fhir.Tx) error {
		return put(tx, "Patient", "bench-patient", []byte(`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"`+testMRNSystem+`","value":"`+mrn+`"}],"name":[{"family":"Bench"}]}`))
	}); err != nil {
		b.Fatal(err)
	}
	run := benchRun()
	for from := 0; from < n; from += 1000 {
		if err := st.Update(ctx, func(tx fhir.Tx) error {
			for i := from; i < min(from+1000, n); i++ {
				if err := put(tx, "Observation", fmt.Sprintf("bench-%d", i), benchObservation(run, "bench-patient", i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	ob := &Outbound{Conn: conn, Sync: sync, Store: st, Client: c, Caps: caps, Plan: PlanWrites(caps), Logger: discard, TargetWait: 5 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, MaxAttempts: 2, Single: single}

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	for {
		if err := ob.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		cn, err := sync.Counts(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if cn[syncstore.StateDead] > 0 {
			dead, _ := sync.Deliveries(ctx, "bench", syncstore.StateDead, 1)
			b.Fatalf("dead rows: %v, e.g. %+v", cn, dead)
		}
		if cn[syncstore.StatePending] == 0 {
			if cn[syncstore.StateDead] > 0 {
				dead, _ := sync.Deliveries(ctx, "bench", syncstore.StateDead, 1)
				b.Fatalf("dead rows: %v, e.g. %+v", cn, dead)
			}
			break
		}
		if time.Since(start) > 15*time.Minute {
			pending, _ := sync.Deliveries(ctx, "bench", syncstore.StatePending, 1)
			b.Fatalf("still pending after 15 min: %v, e.g. %+v", cn, pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	close(stop)
	<-sampled
	links, err := sync.Links(ctx, "bench")
	if err != nil || len(links) != n {
		b.Fatalf("%d links after the drain, want %d (%v)", len(links), n, err)
	}
	return float64(n) / el.Seconds(), float64(peak.Load()) / (1 << 20)
}

// sandboxProcess runs `kapbridge sandbox --profile full` as its own
// process (built once), so that the EHR's memory is not the gateway's:
// the heap sampled is the gateway's alone. It returns a client of it
// authenticated with the test key.
func sandboxProcess(b *testing.B) (*Client, *Capabilities) {
	keys(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "kapbridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kapbridge").CombinedOutput(); err != nil {
		b.Fatalf("build kapbridge: %v\n%s", err, out)
	}
	jwks, _ := json.Marshal(ecKey.PublicJWKS())
	jwksFile := filepath.Join(dir, "gw.jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o644); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "sandbox", "--profile", "full", "--listen", addr, "--client", testClientID+"="+jwksFile)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/metadata"); err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			b.Fatal("the sandbox process did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts, err := NewTokenSource(TokenConfig{FHIRBase: base, ClientID: testClientID, Key: ecKey, Scope: "system/*.cruds", Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(Config{BaseURL: base, Tokens: ts, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	return c, readCaps(b, c)
}

func BenchmarkSyncDrain(b *testing.B) {
	n := benchN()
	// Side by side against one EHR: the plain client, the worker, the
	// plain client again (the EHR's store grows with every write, so the
	// drain is compared with the mean of a run before and one after), and
	// with KAPBRIDGE_BENCH_SINGLE=1 the worker without Bundles.
	measure := func(b *testing.B, c *Client, caps *Capabilities) {
		mrn := "BENCH-" + smart.NewID()[:10]
		pt := ehrWriter{b, c}.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"`+testMRNSystem+`","value":"`+mrn+`"}]}`)
		direct1 := benchDirect(b, c, pt, n)
		drain, heap := benchDrain(b, c, caps, mrn, n, false)
		direct2 := benchDirect(b, c, pt, n)
		direct := (direct1 + direct2) / 2
		b.ReportMetric(direct, "direct-obs/s")
		b.ReportMetric(direct1, "direct-before-obs/s")
		b.ReportMetric(direct2, "direct-after-obs/s")
		b.ReportMetric(drain, "drain-obs/s")
		b.ReportMetric(100*drain/direct, "%-of-direct")
		b.ReportMetric(heap, "MB-peak")
		if os.Getenv("KAPBRIDGE_BENCH_SINGLE") == "1" {
			single, heap := benchDrain(b, c, caps, mrn, n, true)
			b.ReportMetric(single, "single-obs/s")
			b.ReportMetric(100*single/direct, "single-%-of-direct")
			b.ReportMetric(heap, "single-MB-peak")
		}
	}
	b.Run("sandbox-full", func(b *testing.B) {
		for range b.N {
			c, caps := sandboxProcess(b)
			measure(b, c, caps)
		}
	})
	if base := os.Getenv("KAPBRIDGE_TEST_EHR_URL"); base != "" {
		b.Run("medplum", func(b *testing.B) {
			c, err := NewClient(Config{BaseURL: base, Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			caps := readCaps(b, c)
			for range b.N {
				measure(b, c, caps)
			}
		})
	}
}
