package sqlstore_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// BenchmarkClientCheck prices, on one SQLite store, the check of a cached
// token's client that every request makes (auth.Gateway.Verify), beside
// the store read of read-by-id: Verify with the clients' generation
// (migration 0010, what the gateway does), Verify reading the client's
// row per request (a store without the generation), and the read of a
// 1 KB Patient by id. One caller; the variants alternate in rounds of
// 2,000 calls, so machine load falls on all alike; each variant's time per
// call is its own metric.
func BenchmarkClientCheck(b *testing.B) {
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
	body := `{"resourceType":"Patient","id":"p1","name":[{"family":"Bench"}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`
	k := fhir.Key{Tenant: "default", Type: "Patient", ID: "p1"}
	if err := st.Update(ctx, func(tx fhir.Tx) error {
		return tx.Put(ctx, fhir.Version{Key: k, VersionID: 1, LastUpdated: time.Now(), JSON: []byte(body)}, fhir.Index{})
	}); err != nil {
		b.Fatal(err)
	}
	token := func(s auth.Store) (*auth.Gateway, string) {
		gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: s, BaseURL: "https://gw.example"})
		if err != nil {
			b.Fatal(err)
		}
		a, _ := key.Sign(smart.Assertion{ClientID: "bench", TokenURL: gw.TokenURL()})
		tok, err := gw.Issue(ctx, smart.TokenRequestForm(a, "system/*.cruds"))
		if err != nil {
			b.Fatal(err)
		}
		return gw, tok.AccessToken
	}
	genGW, genTok := token(as)
	rowGW, rowTok := token(rowStore{as})
	variants := []struct {
		name string
		call func() error
	}{
		{"verify-generation", func() error { _, err := genGW.Verify(ctx, genTok); return err }},
		{"verify-row", func() error { _, err := rowGW.Verify(ctx, rowTok); return err }},
		{"read-by-id", func() error { _, err := st.Read(ctx, k); return err }},
	}
	const round = 2000
	spent := make([]time.Duration, len(variants))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for j := range variants {
			i := (j + n) % len(variants)
			start := time.Now()
			for range round {
				if err := variants[i].call(); err != nil {
					b.Fatal(err)
				}
			}
			spent[i] += time.Since(start)
		}
	}
	b.StopTimer()
	for i, v := range variants {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N*round), "ns/"+v.name)
	}
	b.ReportMetric(0, "ns/op")
}

// rowStore hides the generation: the gateway reads the client's row per
// request.
type rowStore struct{ auth.Store }
