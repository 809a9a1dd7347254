package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/auth/authtest"
)

func openAuth(t *testing.T, dsn string) auth.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(auth.Store)
}

func TestAuthStoreSQLite(t *testing.T) {
	file := filepath.Join(t.TempDir(), "auth.db")
	st := openAuth(t, file)
	authtest.Run(t, st, func(t *testing.T) auth.Store {
		st.(interface{ Close() error }).Close()
		return openAuth(t, file)
	})
}

func TestAuthStorePostgres(t *testing.T) {
	dsn := sqltest.PostgresDSN(t)
	if dsn == "" {
		t.Skip(sqltest.EnvPostgresDSN + " not set: skipping the PostgreSQL half (.ci/run sets it)")
	}
	dsn = sqltest.FreshSchema(t, dsn)
	st := openAuth(t, dsn)
	authtest.Run(t, st, func(t *testing.T) auth.Store {
		st.(interface{ Close() error }).Close()
		return openAuth(t, dsn)
	})
}
