package server

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Conditional interactions (create with If-None-Exist, conditional update,
// conditional references in transactions) all resolve their criteria
// here, inside the writing transaction, so the check and the write that
// depends on it commit together.

// How criteria treat resources the caller may not see (privacy.go).
type condMode int

const (
	// condReference: a conditional reference. Withheld resources do not
	// exist for it: matching one would point the new resource at it and
	// name its id in the answer.
	condReference condMode = iota
	// condWrite: the target of a conditional create or update. Withheld
	// resources do not match either, so nothing about them can be learnt
	// from which criteria match; but one that carries an identifier the
	// criteria name is the same resource by identity, and creating or
	// updating another would duplicate or overwrite it, so the write is
	// refused (hiddenTargetError). Only the identifier clauses decide
	// that, whatever the other criteria say, so the refusal answers
	// nothing more than "a resource the caller may not see carries this
	// exact identifier".
	condWrite
)

// matchCondition returns the ids of the live typ resources of tenant that
// aud may see and that match the search criteria rawQuery (a URL query
// without the '?'). It runs inside tx so the check and the write that
// depends on it commit together.
//
// Races: a lone identifier=system|value goes through the identifier index,
// whose lookups the store serializes. Any other criteria are a search in
// the transaction's view, taken after tx.LockCriteria (which serializes
// conditional writes of one type on stores with concurrent writers) and
// after locking each system|value identifier they name (so they also
// serialize with identifier-only writers of that identifier): concurrent
// conditional writes with the same criteria make one resource on every
// backend.
func (s *Server) matchCondition(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string, aud fhir.Audience, mode condMode) ([]string, error) {
	return s.matchConditionMax(ctx, tx, tenant, typ, rawQuery, aud, mode, 2)
}

// matchConditionMax is matchCondition finding at least max matches when
// there are as many (matchCondition finds 2: enough to tell none, one and
// several apart).
func (s *Server) matchConditionMax(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string, aud fhir.Audience, mode condMode, max int) ([]string, error) {
	params, perr := url.ParseQuery(rawQuery)
	if perr == nil {
		// Before either path below: U+0000 would reach the identifier
		// index, where PostgreSQL cannot compare it.
		if err := search.RefuseNUL(params); err != nil {
			return nil, err
		}
	}
	if cond, err := parseCondition(rawQuery, "conditional criteria"); err == nil {
		ids, err := tx.LookupIdentifier(ctx, tenant, typ, cond.ident)
		if err != nil {
			return nil, err
		}
		return s.visibleIDs(ctx, tx, tenant, typ, ids, aud, mode)
	}
	if perr != nil {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "conditional criteria %q are not a valid query: %v", rawQuery, perr)
	}
	if len(params) == 0 {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "conditional criteria are empty; give search parameters such as identifier=system|value")
	}
	// search.Store's transactions search (Config.Store); a Tx that does
	// not breaks that contract.
	st, ok := tx.(search.Searcher)
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
	if err := tx.LockCriteria(ctx, tenant, typ); err != nil {
		return nil, err
	}
	idents := identifierClauses(q)
	for _, c := range idents {
		for _, v := range c.Values {
			if v.HasSystem && v.Code != "" {
				// Taken for its lock: identifier-only conditional writes
				// of this identifier wait for this transaction.
				if _, err := tx.LookupIdentifier(ctx, tenant, typ, fhir.Identifier{System: v.System, Value: v.Code}); err != nil {
					return nil, err
				}
			}
		}
	}
	if mode == condWrite && len(idents) > 0 && aud.Hidden() != 0 {
		// Is a withheld resource the same one by identity?
		iq := &search.Query{Type: typ, Clauses: idents, Count: search.MaxCount}
		res, err := st.Search(ctx, tenant, iq, nil)
		if err != nil {
			return nil, err
		}
		for _, v := range res.Matches {
			if aud.Withholds(v) {
				return nil, hiddenTargetError(typ)
			}
		}
		if res.Next != nil {
			return nil, fhir.Errorf(fhir.IssueMultipleMatches, "", "more than %d %s resources carry the identifiers in %q; the condition must match at most one", search.MaxCount, typ, rawQuery).
				WithStatus(http.StatusPreconditionFailed)
		}
	}
	q.Count = max
	q.Hide = aud.Hidden()
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

// visibleIDs keeps the ids (found by identifier) whose resources aud may
// see. In condWrite mode a withheld one refuses the write instead: it is
// the same resource by identity.
func (s *Server) visibleIDs(ctx context.Context, tx fhir.Tx, tenant, typ string, ids []string, aud fhir.Audience, mode condMode) ([]string, error) {
	if aud.Hidden() == 0 {
		return ids, nil
	}
	out := ids[:0:0]
	for _, id := range ids {
		v, err := tx.Read(ctx, fhir.Key{Tenant: tenant, Type: typ, ID: id})
		if err != nil {
			return nil, err
		}
		if !aud.Withholds(v) {
			out = append(out, id)
			continue
		}
		if mode == condWrite {
			return nil, hiddenTargetError(typ)
		}
	}
	return out, nil
}

// identifierClauses returns q's plain identifier clauses (identifier=
// system|value, |value or value, no modifier): the criteria that name a
// resource's identity.
func identifierClauses(q *search.Query) []search.Clause {
	var out []search.Clause
	for _, c := range q.Clauses {
		if c.Param == nil || c.Param.Code != "identifier" || c.Param.Type != search.Token || c.Modifier != "" || c.Chain != nil || c.Has != nil {
			continue
		}
		exact := true
		for _, v := range c.Values {
			exact = exact && v.Code != ""
		}
		if exact {
			out = append(out, c)
		}
	}
	return out
}

// matchOne resolves criteria that may match at most one resource (what
// conditional create and conditional update require): "" when nothing
// matches, the id when one does, 412 when several do.
func (s *Server) matchOne(ctx context.Context, tx fhir.Tx, tenant, typ, rawQuery string, aud fhir.Audience) (string, error) {
	ids, err := s.matchCondition(ctx, tx, tenant, typ, rawQuery, aud, condWrite)
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
