package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// Conditional interactions (create with If-None-Exist, conditional update,
// and their Bundle-entry forms) all resolve their criteria here, inside
// the writing transaction, so that when search lands one function learns
// the new parameters and every conditional path gets them at once.

// matchCondition returns the ids of the live typ resources of tenant that
// match the search criteria rawQuery (a URL query without the '?'). It
// runs inside tx so the check and the write that depends on it commit
// together.
func (s *Server) matchCondition(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string) ([]string, error) {
	cond, err := parseCondition(rawQuery, "conditional criteria")
	if err != nil {
		return nil, err
	}
	return tx.LookupIdentifier(ctx, tenant, typ, cond.ident)
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
