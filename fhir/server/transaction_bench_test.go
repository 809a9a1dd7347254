package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// Transaction throughput over loopback HTTP on the SQLite store (issue 3
// targets: a 1,000-entry transaction under 1 s; 1 Patient + 1 Observation
// transactions at 1,500/s or more with 32 concurrent clients). Run:
//
//	go test ./fhir/server/ -run '^$' -bench Transaction -benchtime 5s

// benchServer serves a fresh SQLite store over loopback HTTP and returns
// its URL and a client whose pool keeps a connection per client
// goroutine (the default keeps 2, so parallel clients would be measuring
// TCP handshakes).
func benchServer(b *testing.B) (string, *http.Client) {
	b.Helper()
	st, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(server.New(server.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	b.Cleanup(ts.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	b.Cleanup(tr.CloseIdleConnections)
	return ts.URL, &http.Client{Transport: tr}
}

func postBundle(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url+"/", "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkTransaction1000: one transaction of 1 Patient + 999
// Observations referring to it by urn:uuid, per iteration.
func BenchmarkTransaction1000(b *testing.B) {
	url, client := benchServer(b)
	body := thousandEntries(b)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		if err := postBundle(client, url, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransactionPatientObservation: transactions of 1 Patient + 1
// Observation referring to it, from about 32 concurrent clients (Blaze's
// published load).
func BenchmarkTransactionPatientObservation(b *testing.B) {
	url, client := benchServer(b)
	const pURL = "urn:uuid:9d3f7c1a-7a51-4f0e-8a43-2b8f7e5c0001"
	body := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"` + pURL + `","resource":{"resourceType":"Patient","identifier":[{"system":"urn:kap:bench","value":"p"}],"name":[{"family":"Bench","given":["Pat"]}],"gender":"female","birthDate":"1970-01-01"},"request":{"method":"POST","url":"Patient"}},` +
		`{"resource":{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"` + pURL + `"},"effectiveDateTime":"2024-01-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}},"request":{"method":"POST","url":"Observation"}}]}`)
	b.SetParallelism((32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var n atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := postBundle(client, url, body); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "tx/s")
}
