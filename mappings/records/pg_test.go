package records

import (
	"context"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// openPGStore opens a store in a fresh schema of the test server named by
// KAPBRIDGE_TEST_POSTGRES_DSN, or skips.
func openPGStore(t testing.TB) search.Store {
	t.Helper()
	dsn := sqltest.PostgresDSN(t)
	if dsn == "" {
		t.Skip(sqltest.EnvPostgresDSN + " not set: skipping the PostgreSQL half (.ci/run sets it)")
	}
	if _, err := ig.Profiles(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.Open(context.Background(), sqltest.FreshSchema(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
