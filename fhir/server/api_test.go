package server_test

import (
	"context"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// TestAPI runs the FHIR REST API suite (fhirtest.RunAPISuite) against the
// server in the process, each test on a fresh in-memory store. The same
// suite runs against `kapbridge serve` on SQLite and PostgreSQL
// (cmd/kapbridge TestAPISuite).
func TestAPI(t *testing.T) {
	fhirtest.RunAPISuite(t, func(t *testing.T) *fhirtest.Gateway {
		st := newMemStore(t)
		srv := newTestServer(t, st)
		return &fhirtest.Gateway{URL: srv.URL, Dump: func(t *testing.T) string { return dumpOf(t, st) }}
	})
}

// TestConformanceResources: the server's own conformance resources
// (fhirtest.RunConformanceSuite) on the in-memory store; on SQLite and
// PostgreSQL in adapters/sqlstore.
func TestConformanceResources(t *testing.T) {
	open := func(t *testing.T) fhir.Store { return newMemStore(t) }
	fhirtest.RunConformanceSuite(t, open, func(t *testing.T, st fhir.Store, docs [][]byte) (*fhirtest.Gateway, func(context.Context) error) {
		srv, h := newServer(t, server.Config{Store: st, Conformance: docs})
		return &fhirtest.Gateway{URL: srv.URL}, h.SeedConformance
	})
}
