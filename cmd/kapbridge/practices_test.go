package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// TestPracticesAll: the overdue sweep gets an Applier for every practice
// a registered client belongs to, before any of them has called, each
// writing its own tenant in its own namespace, and the default one in
// the -practice namespace; an Applier is made once per practice.
func TestPracticesAll(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "kap.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []auth.ClientRow{{ID: "a", Tenant: "default", Scopes: "system/*.rs"}, {ID: "b", Tenant: "beta", Scopes: "system/*.rs"},
		{ID: "b2", Tenant: "beta", Scopes: "system/*.rs"}, {ID: "g", Tenant: "gamma", Scopes: "system/*.rs"}} {
		if err := st.(auth.Store).PutAuthClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	pr := &practices{store: st, make: func(tenant, ns string) *records.Applier {
		return &records.Applier{Store: st, Tenant: tenant, Mapper: &mappings.Mapper{Practice: ns}}
	}}
	def := pr.get(fhir.DefaultTenant, "my-practice")
	all := pr.all(ctx)
	var got []string
	for _, ap := range all {
		got = append(got, ap.Tenant+"/"+ap.Mapper.Practice)
	}
	if len(all) != 3 || got[0] != "beta/beta" || got[1] != "default/my-practice" || got[2] != "gamma/gamma" || all[1] != def {
		t.Fatalf("appliers %v, want beta/beta, default/my-practice (the one made first), gamma/gamma", got)
	}
	if again := pr.all(ctx); again[0] != all[0] || again[2] != all[2] {
		t.Error("a practice's Applier was made again")
	}
}
