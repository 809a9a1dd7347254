// Package authtest is the shared suite every auth.Store backend passes
// (memstore, SQLite, PostgreSQL).
package authtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/auth"
)

// Run checks st: clients round-trip and list by id, keys list newest
// first and record retirement, and a jti is remembered once, atomically,
// until its time passes. reopen, when not nil, closes st and opens the
// same storage again: what was remembered must survive it.
func Run(t *testing.T, st auth.Store, reopen func(t *testing.T) auth.Store) {
	ctx := context.Background()
	t.Run("clients", func(t *testing.T) {
		if _, err := st.AuthClient(ctx, "nobody"); !errors.Is(err, auth.ErrNoClient) {
			t.Fatalf("unknown client: err %v, want ErrNoClient", err)
		}
		b := auth.ClientRow{ID: "b", Tenant: "acme", JWKS: `{"keys":[]}`, Scopes: "system/*.rs", Created: time.Unix(1000, 0).UTC()}
		a := auth.ClientRow{ID: "a", Tenant: "other", JWKSURL: "https://example.org/jwks", Scopes: "system/Patient.read", Recipient: "Practitioner/p", Created: time.Unix(2000, 0).UTC()}
		for _, c := range []auth.ClientRow{b, a} {
			if err := st.PutAuthClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.AuthClient(ctx, "b")
		if err != nil || got != b {
			t.Fatalf("AuthClient(b) = %+v, %v; want %+v", got, err, b)
		}
		b.Disabled = true
		if err := st.PutAuthClient(ctx, b); err != nil {
			t.Fatal(err)
		}
		list, err := st.AuthClients(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || !list[1].Disabled || list[0] != a {
			t.Fatalf("AuthClients = %+v, %v", list, err)
		}
	})
	t.Run("generation", func(t *testing.T) {
		gs, ok := st.(auth.GenerationStore)
		if !ok {
			t.Skipf("%T counts no client changes: the gateway reads the client per request", st)
		}
		g0, err := gs.AuthGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := auth.ClientRow{ID: "gen", Tenant: "acme", Scopes: "system/*.rs", Created: time.Unix(3000, 0).UTC()}
		if err := st.PutAuthClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		g1, err := gs.AuthGeneration(ctx)
		if err != nil || g1 <= g0 {
			t.Fatalf("after adding a client the generation is %d (%v), was %d: want it moved up", g1, err, g0)
		}
		c.Disabled = true
		if err := st.PutAuthClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if g2, err := gs.AuthGeneration(ctx); err != nil || g2 <= g1 {
			t.Fatalf("after disabling a client the generation is %d (%v), was %d: want it moved up", g2, err, g1)
		}
	})
	t.Run("keys", func(t *testing.T) {
		old := auth.KeyRow{KID: "k1", Alg: "ES384", PEM: []byte("pem1"), Created: time.Unix(1000, 0).UTC()}
		nu := auth.KeyRow{KID: "k2", Alg: "RS384", PEM: []byte("pem2"), Created: time.Unix(2000, 0).UTC()}
		for _, k := range []auth.KeyRow{old, nu} {
			if err := st.PutAuthKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		old.Retired = time.Unix(3000, 0).UTC()
		if err := st.PutAuthKey(ctx, old); err != nil {
			t.Fatal(err)
		}
		ks, err := st.AuthKeys(ctx)
		if err != nil || len(ks) != 2 || ks[0].KID != "k2" || !ks[0].Retired.IsZero() || ks[1].KID != "k1" ||
			!ks[1].Retired.Equal(old.Retired) || string(ks[1].PEM) != "pem1" {
			t.Fatalf("AuthKeys = %+v, %v", ks, err)
		}
	})
	t.Run("jti", func(t *testing.T) {
		until := time.Now().Add(time.Hour)
		if err := st.RememberJTI(ctx, "c\x00j1", until); err != nil {
			t.Fatal(err)
		}
		if err := st.RememberJTI(ctx, "c\x00j1", until); !errors.Is(err, auth.ErrJTIUsed) {
			t.Fatalf("replayed jti: err %v, want ErrJTIUsed", err)
		}
		// Expired: may be used again.
		if err := st.RememberJTI(ctx, "c\x00old", time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := st.RememberJTI(ctx, "c\x00old", until); err != nil {
			t.Fatalf("an expired jti should be usable again: %v", err)
		}
		// Concurrent: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, used := 0, 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.RememberJTI(ctx, "c\x00race", until)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, auth.ErrJTIUsed):
					used++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || used != 7 {
			t.Fatalf("8 concurrent uses of one jti: %d accepted, %d refused; want 1 and 7", wins, used)
		}
	})
	if reopen == nil {
		return
	}
	t.Run("restart", func(t *testing.T) {
		st2 := reopen(t)
		if err := st2.RememberJTI(ctx, "c\x00j1", time.Now().Add(time.Hour)); !errors.Is(err, auth.ErrJTIUsed) {
			t.Fatalf("jti replayed after a restart: err %v, want ErrJTIUsed", err)
		}
		if c, err := st2.AuthClient(ctx, "a"); err != nil || c.Tenant != "other" {
			t.Fatalf("client after a restart: %+v, %v", c, err)
		}
	})
}
