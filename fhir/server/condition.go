package server

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Conditional interactions (create with If-None-Exist, conditional update,
// and their Bundle-entry forms) all resolve their criteria here, inside
// the writing transaction, so that when search lands one function learns
// the new parameters and every conditional path gets them at once.

// searchTx is a store transaction that can search its own view.
type searchTx interface {
	Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error)
}

// matchCondition returns the ids of the live typ resources of tenant that
// match the search criteria rawQuery (a URL query without the '?'). It
// runs inside tx so the check and the write that depends on it commit
// together.
//
// The common case, one identifier=system|value, goes through the
// identifier index, whose lookups the store serializes: concurrent
// conditional creates of one identifier make exactly one resource on every
// backend. Any other criteria are a strict search in the transaction's
// view: race-free on SQLite (one writer), best effort on PostgreSQL.
func (s *Server) matchCondition(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string) ([]string, error) {
	params, perr := url.ParseQuery(rawQuery)
	if perr == nil {
		// Before either path below: U+0000 would reach the identifier
		// index, where PostgreSQL cannot compare it.
		if err := search.RefuseNUL(params); err != nil {
			return nil, err
		}
	}
	if cond, err := parseCondition(rawQuery, "conditional criteria"); err == nil {
		return tx.LookupIdentifier(ctx, tenant, typ, cond.ident)
	}
	if perr != nil {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "conditional criteria %q are not a valid query: %v", rawQuery, perr)
	}
	if len(params) == 0 {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "conditional criteria are empty; give search parameters such as identifier=system|value")
	}
	st, ok := tx.(searchTx)
	if !ok {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "this store resolves conditional criteria by identifier=system|value only")
	}
	// Unknown parameters would silently widen the match: always strict.
	q, err := s.lim.Search.ParseQuery(typ, params, s.base, true)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"} {
		if params.Has(k) {
			return nil, fhir.Errorf(fhir.IssueInvalid, "", "conditional criteria cannot use %s", k)
		}
	}
	q.Count = 2 // enough to tell none, one and several apart
	res, err := st.Search(ctx, tenant, q, nil)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(res.Matches))
	for _, v := range res.Matches {
		ids = append(ids, v.ID)
	}
	return ids, nil
}

// matchOne resolves criteria that may match at most one resource (what
// conditional create and conditional update require): "" when nothing
// matches, the id when one does, 412 when several do.
func (s *Server) matchOne(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string) (string, error) {
	ids, err := s.matchCondition(ctx, tx, tenant, typ, rawQuery)
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return ids[0], nil
	default:
		return "", fhir.Errorf(fhir.IssueMultipleMatches, "", "%d %s resources match %q; the condition must match at most one", len(ids), typ, rawQuery).
			WithStatus(http.StatusPreconditionFailed)
	}
}
