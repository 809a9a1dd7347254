package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Search benchmarks on SQLite over a synthetic clinical data set: N
// Observations (KAPBRIDGE_BENCH_OBSERVATIONS, default 20,000; the targets
// in BENCHMARKS.md are for 1,000,000) and one Patient per 10 of them.
// KAPBRIDGE_BENCH_DB names a database file to load once and reuse (a 1M
// load takes minutes); without it the data goes to a temporary directory.
//
//	KAPBRIDGE_BENCH_OBSERVATIONS=1000000 KAPBRIDGE_BENCH_DB=/tmp/kb-1m.db \
//	    go test ./adapters/sqlstore -run '^$' -bench BenchmarkSQLiteSearch -benchtime 2000x

const (
	benchObsEnv = "KAPBRIDGE_BENCH_OBSERVATIONS"
	benchDBEnv  = "KAPBRIDGE_BENCH_DB"
	benchYears  = 10 // observation dates spread evenly over this many years
)

var benchCodes = []string{"8867-4", "29463-7", "8302-2", "8480-6", "8462-4", "2339-0", "718-7", "2093-3", "2085-9", "2571-8",
	"4548-4", "2160-0", "6690-2", "789-8", "777-3", "1742-6", "1920-8", "2951-2", "2823-3", "17861-6"}

var benchDateBase = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

// benchObs describes Observation i deterministically: its patient, code
// and effective date (spread pseudo-randomly so that a date range matches
// resources all over the id order, as real data would).
func benchObs(i int) (patient int, code string, date time.Time) {
	h := uint64(i)*0x9E3779B97F4A7C15 + 12345
	h ^= h >> 29
	span := uint64(benchYears * 365 * 24 * time.Hour / time.Second)
	return int(h>>8) % benchPatients(benchN()), benchCodes[(i*7+int(h>>40))%len(benchCodes)], benchDateBase.Add(time.Duration(h%span) * time.Second)
}

func benchN() int {
	if s := os.Getenv(benchObsEnv); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 20000
}

func benchPatients(n int) int { return max(1, n/10) }

func benchObsVersion(i int, lu time.Time) (fhir.Version, fhir.Index) {
	p, code, date := benchObs(i)
	id, pid := fmt.Sprintf("o%08d", i), fmt.Sprintf("p%07d", p)
	value := 40 + float64((i*37)%1600)/10
	status := "final"
	if i%10 == 0 {
		status = "amended"
	}
	body := fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"meta":{"versionId":"1","lastUpdated":%q},"status":%q,`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},`+
		`"effectiveDateTime":%q,"valueQuantity":{"value":%g,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`,
		id, lu.Format(time.RFC3339Nano), status, code, pid, date.Format(time.RFC3339), value)
	qty := fhir.IndexEntry{Param: "value-quantity", Type: "quantity", NumLo: value - 0.05, NumHi: value + 0.05,
		System: "http://unitsofmeasure.org", Code: "mg/dL"}
	tok := fhir.IndexEntry{Param: "code", Type: "token", System: "http://loinc.org", Code: code}
	ts := date.UnixMicro()
	idx := fhir.Index{Entries: []fhir.IndexEntry{
		tok,
		{Param: "status", Type: "token", System: "http://hl7.org/fhir/observation-status", Code: status},
		{Param: "category", Type: "token", System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs"},
		{Param: "subject", Type: "reference", RefType: "Patient", RefID: pid},
		{Param: "patient", Type: "reference", RefType: "Patient", RefID: pid},
		{Param: "date", Type: "date", Lo: ts, Hi: ts + 999999},
		qty,
		{Param: "code-value-quantity", Type: "composite", Parts: []fhir.IndexEntry{tok, qty}},
	}}
	return fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}, VersionID: 1, LastUpdated: lu, JSON: body}, idx
}

func benchPatientVersion(p int, lu time.Time) (fhir.Version, fhir.Index) {
	id := fmt.Sprintf("p%07d", p)
	v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}, VersionID: 1, LastUpdated: lu, JSON: benchBody(id)}
	idx := fhir.Index{
		Identifiers: []fhir.Identifier{{System: "urn:oid:1.2.276.0.76.4.8", Value: "mrn-" + id}},
		Entries: []fhir.IndexEntry{
			{Param: "identifier", Type: "token", System: "urn:oid:1.2.276.0.76.4.8", Code: "mrn-" + id},
			{Param: "family", Type: "string", Text: "mustermann", Exact: "Mustermann"},
			{Param: "given", Type: "string", Text: "erika", Exact: "Erika"},
			{Param: "gender", Type: "token", System: "http://hl7.org/fhir/administrative-gender", Code: "female"},
			{Param: "birthdate", Type: "date", Lo: time.Date(1964, 8, 12, 0, 0, 0, 0, time.UTC).UnixMicro(),
				Hi: time.Date(1964, 8, 13, 0, 0, 0, 0, time.UTC).UnixMicro() - 1},
		},
	}
	return v, idx
}

// benchLoad writes the data set in Updates of 1000 resources from a few
// goroutines (so group commit overlaps building a batch with committing
// the previous one).
func benchLoad(b *testing.B, s fhir.Store, n int) {
	const chunk, workers = 1000, 4
	np := benchPatients(n)
	total := np + n
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	lu := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= total {
					return
				}
				hi := min(lo+chunk, total)
				err := s.Update(context.Background(), func(tx fhir.Tx) error {
					for j := lo; j < hi; j++ {
						var v fhir.Version
						var idx fhir.Index
						if j < np {
							v, idx = benchPatientVersion(j, lu)
						} else {
							v, idx = benchObsVersion(j-np, lu.Add(time.Duration(j)*time.Millisecond))
						}
						if err := tx.Put(context.Background(), v, idx); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Logf("loaded %d Observations and %d Patients in %v (%.0f resources/s)", n, np, time.Since(start).Round(time.Millisecond),
		float64(total)/time.Since(start).Seconds())
}

// openSearchBench opens (and loads if needed) the benchmark database.
func openSearchBench(b *testing.B, n int) *sqliteStore {
	path := os.Getenv(benchDBEnv)
	if path == "" {
		path = filepath.Join(b.TempDir(), "search.db")
	}
	st, err := Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := st.(*sqliteStore)
	q := &search.Query{Type: "Observation", Summary: "count"}
	res, err := s.Search(b.Context(), fhir.DefaultTenant, q, nil)
	if err != nil {
		b.Fatal(err)
	}
	switch res.Total {
	case n:
	case 0:
		benchLoad(b, s, n)
		// Planner statistics, as a deployment would have after its first
		// maintenance run.
		if _, err := s.wconn.ExecContext(b.Context(), "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	default:
		b.Fatalf("%s holds %d Observations, not %d: remove it or set %s", path, res.Total, n, benchObsEnv)
	}
	if fi, err := os.Stat(path); err == nil {
		b.Logf("database %s: %.1f MB", path, float64(fi.Size())/1e6)
	}
	return s
}

// latencies collects per-operation durations and reports percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(float64(len(l))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func BenchmarkSQLiteSearch(b *testing.B) {
	n := benchN()
	s := openSearchBench(b, n)
	code := &search.Param{Code: "code", Type: search.Token}
	subject := &search.Param{Code: "subject", Type: search.Reference, Targets: []string{"Patient", "Group"}}
	date := &search.Param{Code: "date", Type: search.Date}

	// subject=Patient/X&code=http://loinc.org|C, C the code of one of X's
	// observations (so most searches find one or a few).
	b.Run("TokenReference", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make(latencies, 0, b.N)
		found := 0
		for b.Loop() {
			i := rng.IntN(n)
			p, c, _ := benchObs(i)
			q := &search.Query{Type: "Observation", Clauses: []search.Clause{
				{Param: subject, Values: []search.Value{{RefType: "Patient", RefID: fmt.Sprintf("p%07d", p)}}},
				{Param: code, Values: []search.Value{{HasSystem: true, System: "http://loinc.org", Code: c}}},
			}}
			t0 := time.Now()
			res, err := s.Search(b.Context(), fhir.DefaultTenant, q, nil)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Matches) == 0 {
				b.Fatalf("no match for Patient/p%07d and %s (observation %d)", p, c, i)
			}
			found += len(res.Matches)
		}
		lat.report(b)
		b.ReportMetric(float64(found)/float64(len(lat)), "matches/op")
	})

	// date=geY-01-01&date=ltY+1-01-01: one of ten years, so about a tenth
	// of the observations (100,000 of 1,000,000) match; the first page of
	// 50 is returned.
	b.Run("DateRange", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(3, 4))
		lat := make(latencies, 0, b.N)
		var total int
		for b.Loop() {
			y := benchDateBase.Year() + rng.IntN(benchYears)
			lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
			hi := lo.AddDate(1, 0, 0)
			q := &search.Query{Type: "Observation", Count: 50, Clauses: []search.Clause{
				{Param: date, Values: []search.Value{{Prefix: search.GE, Lo: lo.UnixMicro(), Hi: lo.AddDate(0, 0, 1).UnixMicro() - 1}}},
				{Param: date, Values: []search.Value{{Prefix: search.LT, Lo: hi.UnixMicro(), Hi: hi.AddDate(0, 0, 1).UnixMicro() - 1}}},
			}}
			t0 := time.Now()
			res, err := s.Search(b.Context(), fhir.DefaultTenant, q, nil)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Matches) != 50 || res.Next == nil {
				b.Fatalf("year %d: %d matches, next %v; want a full page of 50", y, len(res.Matches), res.Next)
			}
			total += len(res.Matches)
		}
		lat.report(b)
	})

	// Chains and _has as the REST API parses them (search.ParseQuery):
	// one link (the patient by identifier), and two (the observations of
	// the patient of one observation, through a chain and a _has), the
	// most selective first as a client would write them.
	for _, bc := range []struct{ name, query string }{
		{"Chain1", "subject:Patient.identifier=urn:oid:1.2.276.0.76.4.8|mrn-p%07d"},
		{"ChainHas2", "subject:Patient._has:Observation:subject:_id=%s"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			lat := make(latencies, 0, b.N)
			found := 0
			for b.Loop() {
				i := rng.IntN(n)
				p, _, _ := benchObs(i)
				arg := any(p)
				if bc.name == "ChainHas2" {
					arg = fmt.Sprintf("o%08d", i)
				}
				k, v, _ := strings.Cut(fmt.Sprintf(bc.query, arg), "=")
				q, err := search.ParseQuery("Observation", url.Values{k: {v}}, "", true)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				res, err := s.Search(b.Context(), fhir.DefaultTenant, q, nil)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Matches) == 0 {
					b.Fatalf("%s: no match (observation %d, patient %d)", bc.name, i, p)
				}
				found += len(res.Matches)
			}
			lat.report(b)
			b.ReportMetric(float64(found)/float64(len(lat)), "matches/op")
		})
	}

	// The same date range, counted (_total=accurate): how many match.
	b.Run("DateRangeCount", func(b *testing.B) {
		y := benchDateBase.Year() + 5
		lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		hi := lo.AddDate(1, 0, 0)
		q := &search.Query{Type: "Observation", Summary: "count", Clauses: []search.Clause{
			{Param: date, Values: []search.Value{{Prefix: search.GE, Lo: lo.UnixMicro(), Hi: lo.AddDate(0, 0, 1).UnixMicro() - 1}}},
			{Param: date, Values: []search.Value{{Prefix: search.LT, Lo: hi.UnixMicro(), Hi: hi.AddDate(0, 0, 1).UnixMicro() - 1}}},
		}}
		var matches int
		for b.Loop() {
			res, err := s.Search(b.Context(), fhir.DefaultTenant, q, nil)
			if err != nil {
				b.Fatal(err)
			}
			matches = res.Total
		}
		b.ReportMetric(float64(matches), "matches")
	})
}
