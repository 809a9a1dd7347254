package inboundstore_test

import (
	"testing"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore/inboundtest"
)

func TestMemoryContract(t *testing.T) {
	inboundtest.Run(t, func(*testing.T) inboundstore.Store { return &inboundstore.Memory{} })
}
