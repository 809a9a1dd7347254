package memstore_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// The benchmark data: benchPatients Patients and benchObs Observations
// (heart rate or body weight, 10 codes in all, each with a subject and a
// date), indexed by package search from their JSON as the server would.
const (
	benchPatients = 500
	benchObs      = 5000
)

func patientJSON(i int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%d","identifier":[{"system":"urn:mrn","value":"%d"}],"active":true,`+
		`"name":[{"family":"Family%d","given":["Given%d"]}],"gender":"%s","birthDate":"19%02d-0%d-1%d",`+
		`"address":[{"line":["Heidestraße %d"],"city":"Köln","postalCode":"51147","country":"DE"}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>"}}`,
		i, i, i%97, i, []string{"female", "male"}[i%2], i%100, 1+i%9, i%10, i, strings.Repeat("x", 400))
}

func observationJSON(i int) []byte {
	code := fmt.Sprintf("1000%d-%d", i%10, i%10)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour).Format(time.RFC3339)
	return fmt.Appendf(nil, `{"resourceType":"Observation","id":"o%d","status":"final",`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":"Code %d"}],"text":"code %d"},`+
		`"subject":{"reference":"Patient/p%d"},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		i, code, i%10, i%10, i%benchPatients, at, 40+i%120)
}

// benchPut writes body as version 1 of typ/id, indexed as the server would.
func benchPut(ctx context.Context, tx fhir.Tx, typ, id string, body []byte) error {
	res, err := fhir.ParseJSON(body, fhir.DefaultLimits)
	if err != nil {
		return err
	}
	var idents []fhir.Identifier
	if typ == "Patient" {
		idents = []fhir.Identifier{{System: "urn:mrn", Value: strings.TrimPrefix(id, "p")}}
	}
	v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}, VersionID: 1, JSON: body}
	return tx.Put(ctx, v, fhir.Index{Identifiers: idents, Entries: search.Extract(res, "")})
}

var (
	benchOnce  sync.Once
	benchStore *memstore.Store
)

// loaded returns a store holding the benchmark data, shared by the
// read-only benchmarks.
func loaded(b *testing.B) *memstore.Store {
	benchOnce.Do(func() {
		s := memstore.New()
		ctx := context.Background()
		err := s.Update(ctx, func(tx fhir.Tx) error {
			for i := range benchPatients {
				if err := benchPut(ctx, tx, "Patient", fmt.Sprintf("p%d", i), patientJSON(i)); err != nil {
					return err
				}
			}
			for i := range benchObs {
				if err := benchPut(ctx, tx, "Observation", fmt.Sprintf("o%d", i), observationJSON(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			panic(err)
		}
		benchStore = s
	})
	return benchStore
}

// BenchmarkCreate: one Observation per Update, index values precomputed
// (the store's own cost, not the JSON parser's).
func BenchmarkCreate(b *testing.B) {
	s := memstore.New()
	defer s.Close()
	ctx := b.Context()
	body := observationJSON(7)
	res, err := fhir.ParseJSON(body, fhir.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	idx := fhir.Index{Entries: search.Extract(res, "")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: fmt.Sprint("c", i)}, VersionID: 1, JSON: body}
		if err := s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, idx) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateParallel: the same from concurrent callers (one writer
// serves them all).
func BenchmarkCreateParallel(b *testing.B) {
	s := memstore.New()
	defer s.Close()
	body := observationJSON(7)
	res, err := fhir.ParseJSON(body, fhir.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	idx := fhir.Index{Entries: search.Extract(res, "")}
	var mu sync.Mutex
	n := 0
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			mu.Lock()
			n++
			id := fmt.Sprint("c", n)
			mu.Unlock()
			v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}, VersionID: 1, JSON: body}
			if err := s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, idx) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRead(b *testing.B) {
	s := loaded(b)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: fmt.Sprint("o", i%benchObs)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearch runs searches parsed from URLs, as the server would,
// first page only (_count 50 unless the query says otherwise).
func BenchmarkSearch(b *testing.B) {
	s := loaded(b)
	for _, bc := range []struct{ name, typ, query string }{
		{"token_10pct", "Observation", "code=http://loinc.org|10003-3"},
		{"token_total", "Observation", "code=10003-3&_total=accurate"},
		{"reference", "Observation", "subject=Patient/p42"},
		{"date_sorted", "Observation", "date=ge2025-03-01&_sort=-date"},
		{"quantity_count", "Observation", "value-quantity=gt150&_summary=count"},
		{"chain", "Observation", "subject:Patient.name=family4&_count=10"},
		{"has", "Patient", "_has:Observation:subject:code=10003-3&_count=10"},
		{"include", "Observation", "subject=Patient/p42&_include=Observation:subject"},
		{"revinclude", "Patient", "_id=p42&_revinclude=Observation:subject"},
		{"string", "Patient", "name=family4"},
		{"identifier", "Patient", "identifier=urn:mrn|42"},
	} {
		vals, err := url.ParseQuery(bc.query)
		if err != nil {
			b.Fatal(err)
		}
		q, err := search.ParseQuery(bc.typ, vals, "", true)
		if err != nil {
			b.Fatalf("%s: %v", bc.query, err)
		}
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			res, err := s.Search(ctx, fhir.DefaultTenant, q, nil)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Matches) == 0 && res.Total <= 0 {
				b.Fatalf("%s: no matches", bc.query)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Search(ctx, fhir.DefaultTenant, q, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSearchPaged walks every page (_count 50) of a 10% token
// search.
func BenchmarkSearchPaged(b *testing.B) {
	s := loaded(b)
	q, err := search.ParseQuery("Observation", url.Values{"code": {"10003-3"}}, "", true)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		var cur *search.Cursor
		for {
			res, err := s.Search(ctx, fhir.DefaultTenant, q, cur)
			if err != nil {
				b.Fatal(err)
			}
			if cur = res.Next; cur == nil {
				break
			}
		}
	}
}

// BenchmarkHeapPerResource reports the heap a stored resource costs (the
// benchmark Observations: about 450 bytes of JSON, 10 index values).
func BenchmarkHeapPerResource(b *testing.B) {
	const n = 20000
	bodies := make([][]byte, n)
	idxs := make([]fhir.Index, n)
	for i := range n {
		bodies[i] = observationJSON(i)
		res, err := fhir.ParseJSON(bodies[i], fhir.DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		idxs[i] = fhir.Index{Entries: search.Extract(res, "")}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("o", i)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	ctx := b.Context()
	var per float64
	for b.Loop() {
		before := heap()
		s := memstore.New()
		for i := 0; i < n; i += 100 {
			err := s.Update(ctx, func(tx fhir.Tx) error {
				for j := i; j < i+100; j++ {
					v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: ids[j]}, VersionID: 1, JSON: bodies[j]}
					if err := tx.Put(ctx, v, idxs[j]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		per = float64(heap()-before) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(per, "heap-B/resource")
}
