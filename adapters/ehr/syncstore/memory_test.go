package syncstore_test

import (
	"testing"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore/synctest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
)

func TestMemoryContract(t *testing.T) {
	synctest.Run(t, func(t *testing.T) (fhir.Store, syncstore.Store) {
		st := memstore.New()
		return st, syncstore.NewMemory(st)
	})
}
