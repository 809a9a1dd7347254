package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// BenchmarkReadByIDAuth measures GET /Patient/{id} over loopback HTTP on
// one SQLite store, side by side: without authorization, with it (the
// bearer token verified once, then from the per-token cache; the client's
// state checked per request against the store's clients generation,
// coalesced; the scope decision), with it and the audit trail (an
// AuditEvent written per read, in batches, stored and indexed directly
// from the record), and with the trail writing each event through
// write.Writer as before issue 14's last round (parse, stamp, FHIRPath
// index), in rounds that alternate them within one run. The variant
// "auth=on(client-in-memory)" takes the client's row from memory instead
// of checking the store per request: the price of that check is the
// difference to auth=on.
func BenchmarkReadByIDAuth(b *testing.B) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(b.TempDir(), "kap.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	as := st.(auth.Store)
	key, _ := smart.GenerateKey(smart.ES384)
	set, _ := json.Marshal(key.PublicJWKS())
	_ = as.PutAuthClient(ctx, auth.ClientRow{ID: "bench", Tenant: "default", JWKS: string(set), Scopes: "system/*.cruds"})
	log := slog.New(slog.DiscardHandler)

	type variant struct {
		name, token string
		trail       *audit.Trail
	}
	urls := map[string]string{}
	vs := []variant{}
	for _, c := range []struct {
		name                     string
		auth, audit, via, memory bool
	}{{"auth=off", false, false, false, false}, {"auth=on(client-in-memory)", true, false, false, true}, {"auth=on", true, false, false, false},
		{"auth=on+audit", true, true, false, false}, {"auth=on+audit(writer)", true, true, true, false}} {
		var h *server.Server
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
		b.Cleanup(ts.Close)
		cfg := server.Config{Store: st, BaseURL: ts.URL, Logger: log}
		v := variant{name: c.name}
		if c.auth {
			var gs auth.Store = as
			if c.memory {
				// The cost of authorization without the store check of the
				// client per request: the client's row from memory.
				row, _ := as.AuthClient(ctx, "bench")
				gs = memClient{Store: as, row: row}
			}
			gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: gs, BaseURL: ts.URL})
			if err != nil {
				b.Fatal(err)
			}
			cfg.Auth = &server.Auth{Verifier: gw, Gateway: gw}
			if c.audit {
				tr := audit.NewTrail(audit.TrailConfig{Store: st, Tenant: auth.AuditTenant, NewID: server.NewUUID, Logger: log, ViaWriter: c.via})
				b.Cleanup(func() { tr.Close() })
				cfg.Auth.Audit = tr
				v.trail = tr
			}
			a, _ := key.Sign(smart.Assertion{ClientID: "bench", TokenURL: gw.TokenURL()})
			tok, err := gw.Issue(ctx, smart.TokenRequestForm(a, "system/*.cruds"))
			if err != nil {
				b.Fatal(err)
			}
			v.token = tok.AccessToken
		}
		h = server.New(cfg)
		urls[c.name] = ts.URL
		vs = append(vs, v)
	}
	// One patient, written through the open server.
	req, _ := http.NewRequest("PUT", urls["auth=off"]+"/Patient/bench", strings.NewReader(`{"resourceType":"Patient","id":"bench","name":[{"family":"Bench"}]}`))
	req.Header.Set("Content-Type", "application/fhir+json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode >= 300 {
		b.Fatalf("seed: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// Throughput, side by side: each iteration is one round in which
	// every variant in turn (the first one rotating) is read by 16
	// keep-alive clients for 300 ms; reads are summed per variant over the
	// rounds, so load from other work on the machine falls on all of them
	// alike. Each variant's reads/s is its own metric, and so is the CPU
	// time this process spent per read (getrusage: server, clients and,
	// synced at the end of its round, the audit trail): on a machine
	// shared with other work, throughput swings with their load, while
	// CPU per read counts only this process's work.
	const clients, slice = 16, 300 * time.Millisecond
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	reads := make([]int64, len(vs))
	spent := make([]time.Duration, len(vs))
	cpu := make([]time.Duration, len(vs)) // this process's CPU time (server, clients and trail)
	round := func(i int) {
		u := urls[vs[i].name] + "/Patient/bench"
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(slice)
		start, cpu0 := time.Now(), cpuTime()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					req, _ := http.NewRequest("GET", u, nil)
					if vs[i].token != "" {
						req.Header.Set("Authorization", "Bearer "+vs[i].token)
					}
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("%s: status %d", vs[i].name, resp.StatusCode)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		if vs[i].trail != nil {
			vs[i].trail.Sync() // its events written within its round, on its CPU time
		}
		reads[i] += n.Load()
		spent[i] += time.Since(start)
		cpu[i] += cpuTime() - cpu0
	}
	for i := range vs { // warm up: connections, the token cache
		round(i)
		reads[i], spent[i], cpu[i] = 0, 0, 0
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for k := range vs {
			round((k + n) % len(vs))
		}
	}
	b.StopTimer()
	for i, v := range vs {
		b.ReportMetric(float64(reads[i])/spent[i].Seconds(), "reads/s("+v.name+")")
		b.ReportMetric(float64(cpu[i].Microseconds())/float64(reads[i]), "cpu-us/read("+v.name+")")
	}
	b.ReportMetric(0, "ns/op")
}

// memClient is a Store whose one client is read from memory.
type memClient struct {
	auth.Store
	row auth.ClientRow
}

func (m memClient) AuthClient(context.Context, string) (auth.ClientRow, error) { return m.row, nil }

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
