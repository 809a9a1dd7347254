package sqlstore

import (
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore/inboundtest"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
)

// The inbound sync state's contract suite on both backends.

func TestSQLiteInboundContract(t *testing.T) {
	inboundtest.Run(t, func(t *testing.T) inboundstore.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "fhir.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.(inboundstore.Store)
	})
}

func TestPostgresInboundContract(t *testing.T) {
	dsn := postgresDSN(t)
	inboundtest.Run(t, func(t *testing.T) inboundstore.Store {
		s, err := Open(t.Context(), sqltest.FreshSchema(t, dsn))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.(inboundstore.Store)
	})
}
