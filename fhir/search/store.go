package search

import (
	"context"
	"errors"
	"fmt"

	"github.com/kapbridge/kapbridge/fhir"
)

// The store capabilities search needs, declared once here, beside the
// Query and Result they take and give. fhir.Store says nothing of search
// (package fhir cannot name a Query); a store that searches implements
// these as well, and its users (the REST API, the shared suites, export)
// require them where they take the store, not by asserting them where
// they call them.

// Searcher runs a search of one tenant's resources. A fhir.Store
// implements it over its committed state; the fhir.Tx its Update passes
// to fn implements it over the transaction's own view, its writes
// included (conditional interactions search there, so the check and the
// write that depends on it commit together).
//
// cur nil asks for the first page; otherwise cur is a Result.Next of the
// same query, and the page continues it at the first page's snapshot.
// Errors: a *fhir.Error of type not-supported for what the store cannot
// evaluate, of type invalid for a cursor it did not issue; any other
// error is a storage failure (or the context's).
type Searcher interface {
	Search(ctx context.Context, tenant string, q *Query, cur *Cursor) (Result, error)
}

// HistoryPager pages the type history (q.Type set) or system history
// (q.Type empty) of one tenant, newest first. Errors are as for Searcher.
type HistoryPager interface {
	HistoryPage(ctx context.Context, tenant string, q HistoryQuery) (HistoryResult, error)
}

// Store is a fhir.Store that searches and pages history, and whose
// transactions search their own view (the fhir.Tx its Update passes to fn
// implements Searcher). Every backend of the project is one
// (adapters/sqlstore on SQLite and PostgreSQL, fhir/memstore); the shared
// suites (fhir/fhirtest) hold them to it.
type Store interface {
	fhir.Store
	Searcher
	HistoryPager
}

// ErrUnsupported is wrapped by a store's Search when a query uses
// something the store cannot evaluate (a modifier such as :identifier or
// :in, a special parameter). The error is a *fhir.Error of type
// not-supported, so the server answers 400 with its message without
// knowing the store.
var ErrUnsupported = errors.New("search: unsupported by this store")

// Unsupported is the error a store returns for what it cannot evaluate.
func Unsupported(format string, a ...any) error {
	return fhir.Errorf(fhir.IssueNotSupported, "", "%s", fmt.Sprintf(format, a...)).Wrap(ErrUnsupported)
}
