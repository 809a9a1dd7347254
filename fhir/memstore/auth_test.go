package memstore_test

import (
	"testing"

	"github.com/kapbridge/kapbridge/fhir/auth/authtest"
	"github.com/kapbridge/kapbridge/fhir/memstore"
)

func TestAuthStore(t *testing.T) { authtest.Run(t, memstore.New(), nil) }
