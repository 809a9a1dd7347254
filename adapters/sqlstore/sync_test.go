package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore/synctest"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
)

// The sync store contract (adapters/ehr/syncstore) on both SQL stores.
func TestSyncContract(t *testing.T) {
	open := func(t *testing.T, dsn string) (fhir.Store, syncstore.Store) {
		st, err := sqlstore.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ss, ok := st.(syncstore.Store)
		if !ok {
			t.Fatalf("%T is no syncstore.Store", st)
		}
		return st, ss
	}
	t.Run("SQLite", func(t *testing.T) {
		synctest.Run(t, func(t *testing.T) (fhir.Store, syncstore.Store) {
			return open(t, "sqlite:"+filepath.Join(t.TempDir(), "kb.db"))
		})
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := sqltest.PostgresDSN(t)
		if dsn == "" {
			t.Skip(sqltest.EnvPostgresDSN + " not set: skipping the PostgreSQL half (.ci/run sets it)")
		}
		synctest.Run(t, func(t *testing.T) (fhir.Store, syncstore.Store) {
			return open(t, sqltest.FreshSchema(t, dsn))
		})
	})
}
