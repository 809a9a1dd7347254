package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// faultyStore lets a test provoke the failures a healthy store never shows.
type faultyStore struct {
	search.Store
	readErr   error
	readPanic bool
	updateErr error
}

func (s faultyStore) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	if s.readPanic {
		panic("secret-internal-detail")
	}
	if s.readErr != nil {
		return fhir.Version{}, s.readErr
	}
	return s.Store.Read(ctx, k)
}

func (s faultyStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	if s.updateErr != nil {
		return s.updateErr
	}
	return s.Store.Update(ctx, fn)
}

func TestFailuresDoNotLeak(t *testing.T) {
	base := memstore.New()
	t.Cleanup(func() { base.Close() })
	t.Run("panic is a 500 without a stack", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, readPanic: true})
		r := srv.do("GET", "/Patient/x", nil)
		assertOutcome(t, r, 500)
		if strings.Contains(string(r.body), "secret-internal-detail") || strings.Contains(string(r.body), "goroutine") {
			t.Errorf("500 leaks the panic: %s", r.body)
		}
	})
	t.Run("storage error is a 500 without the cause", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, readErr: errors.New("dial tcp 10.1.2.3: password=hunter2")})
		r := srv.do("GET", "/Patient/x", nil)
		assertOutcome(t, r, 500)
		if strings.Contains(string(r.body), "hunter2") {
			t.Errorf("500 leaks the cause: %s", r.body)
		}
	})
	t.Run("lost version race is a 409", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, updateErr: fmt.Errorf("gave up: %w", fhir.ErrVersionConflict)})
		assertOutcome(t, srv.do("PUT", "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`)), http.StatusConflict)
	})
	t.Run("business rule is a 422", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, updateErr: fhir.Errorf(fhir.IssueBusinessRule, "Patient", "refused by rule")})
		assertOutcome(t, srv.do("PUT", "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`)), http.StatusUnprocessableEntity)
	})
}
