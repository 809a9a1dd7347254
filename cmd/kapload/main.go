// Command kapload is a small HTTP load generator for kapbridge's FHIR API:
// it runs N concurrent clients for a fixed time (or request count) against
// one interaction and reports throughput and latency percentiles.
//
//	kapload -url http://127.0.0.1:8080 -mode read -c 32 -d 10s
//	kapload -url http://127.0.0.1:8080 -mode create -c 32 -d 10s
//	kapload -url http://127.0.0.1:8080 -mode get -path '/Observation?subject=Patient/p%07d' -rand 100000
//
// It only ever talks to the URL it is given; use a loopback address.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// observation is the request body for create, and the resource read in
// read mode: a heart-rate vital sign of the size a gateway sees.
const observation = `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},"subject":{"reference":"Patient/example"},"effectiveDateTime":"2026-11-20T10:30:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kapload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kapload", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "FHIR base URL (loopback)")
	mode := fs.String("mode", "read", "read (GET one Observation by id), create (POST Observations) or get (GET -path)")
	path := fs.String("path", "", "get mode: the path and query to GET; a %d-style verb in it is replaced by a random number below -rand")
	randMax := fs.Int("rand", 0, "get mode: the bound of the random number put into -path")
	conc := fs.Int("c", 32, "concurrent clients")
	dur := fs.Duration("d", 10*time.Second, "how long to run")
	maxReq := fs.Int("n", 0, "stop after this many requests (0: run for -d)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2, MaxConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}

	var target string
	switch *mode {
	case "read":
		id, err := createOne(client, *base)
		if err != nil {
			return err
		}
		target = *base + "/Observation/" + id
	case "create":
		target = *base + "/Observation"
	case "get":
		if !strings.HasPrefix(*path, "/") {
			return fmt.Errorf("-mode get needs -path starting with /")
		}
		target = *base + *path
	default:
		return fmt.Errorf("-mode %q: want read or create", *mode)
	}

	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var count, failures atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				if *maxReq > 0 && count.Add(1) > int64(*maxReq) {
					return
				}
				t0 := time.Now()
				var resp *http.Response
				var err error
				switch {
				case *mode == "read":
					resp, err = client.Get(target)
				case *mode == "get" && *randMax > 0:
					resp, err = client.Get(fmt.Sprintf(target, rand.IntN(*randMax)))
				case *mode == "get":
					resp, err = client.Get(target)
				default:
					resp, err = client.Post(target, "application/fhir+json", bytes.NewReader([]byte(observation)))
				}
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						failures.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					failures.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return fmt.Errorf("no successful request (%d failures)", failures.Load())
	}
	pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
	fmt.Fprintf(out, "mode=%s clients=%d duration=%s ok=%d failed=%d rate=%.0f req/s p50=%s p90=%s p99=%s max=%s\n",
		*mode, *conc, elapsed.Round(time.Millisecond), len(all), failures.Load(), float64(len(all))/elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), all[len(all)-1])
	return nil
}

func createOne(client *http.Client, base string) (string, error) {
	resp, err := client.Post(base+"/Observation", "application/fhir+json", bytes.NewReader([]byte(observation)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var m struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("create: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return "", err
	}
	return m.ID, nil
}
