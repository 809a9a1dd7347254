package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/patch"
)

// Running a transaction: every write entry inside one Store.Update, so it
// commits or vanishes whole (versions, index rows and history alike),
// with urn:uuid fullUrls and conditional references rewritten to the ids
// they resolve to. The write entries of a batch (batch.go) are resolved
// and written by the same resolveTargets and writeEntry, one Update each.

// refSite is one Reference.reference string inside an entry resource that
// names another entry's fullUrl.
type refSite struct {
	node    *fhir.Value
	fullURL string
}

// transaction processes entries all or nothing.
func (s *Server) transaction(ctx context.Context, r *Request, entries []*bundleEntryReq) (*Response, error) {
	if err := transactionFailure(entries); err != nil {
		return nil, err
	}
	// The reference strings to rewrite are found once, here: inside the
	// Update they are set from the recorded fullUrl or criteria, so a
	// re-run of fn (after a lost race) rewrites them again to that run's
	// ids instead of seeing the previous run's.
	fullURLs := map[string]bool{}
	for _, e := range entries {
		if e.fullURL != "" && e.method != http.MethodGet && e.method != http.MethodHead {
			fullURLs[e.fullURL] = true
		}
	}
	var sites []refSite
	var conds []condRefSite
	for _, e := range entries {
		if e.res != nil {
			w := refWalker{s: s, fullURLs: fullURLs, entry: e, sites: sites, conds: conds}
			w.path = append(w.path, e.typ...)
			w.walk(e.res)
			sites, conds = w.sites, w.conds
		}
		if e.patch != nil {
			// The references a PATCH entry's values carry are rewritten the
			// same way, before the patch is applied.
			w := refWalker{s: s, fullURLs: fullURLs, entry: e, sites: sites, conds: conds}
			w.path = append(w.path, "Bundle.entry["+strconv.Itoa(e.index)+"].resource"...)
			for _, node := range patch.References(e.patch) {
				w.reference(node)
			}
			sites, conds = w.sites, w.conds
		}
	}

	writes := false
	for _, e := range entries {
		writes = writes || e.method != http.MethodGet && e.method != http.MethodHead
	}
	if !writes {
		// Reads only: no store transaction to open.
		s.runGets(ctx, r, entries)
		return s.respondBundle(r, "transaction-response", entries), nil
	}
	tenant, aud := r.tenant(), r.Audience
	err := s.store.Update(ctx, func(tx fhir.Tx) error {
		if err := s.resolveTargets(ctx, tx, tenant, aud, entries); err != nil {
			return err
		}
		target := make(map[string]string, len(fullURLs))
		for _, e := range entries {
			if fullURLs[e.fullURL] {
				target[e.fullURL] = e.key.Type + "/" + e.key.ID
			}
		}
		for _, site := range sites {
			site.node.Str = target[site.fullURL]
		}
		// http.html#trules: DELETE, then POST, then PUT, then GET. The
		// entries holding conditional references go last, after their
		// criteria are resolved, so that (as the spec orders it) the
		// criteria see what the other entries wrote. Every entry touches
		// a different resource, so this changes no outcome.
		if err := s.writeEntries(ctx, tx, entries, false, aud); err != nil {
			return err
		}
		if len(conds) == 0 {
			return nil
		}
		for _, cr := range conds {
			if err := s.resolveConditionalReference(ctx, tx, tenant, aud, cr); err != nil {
				return err
			}
		}
		return s.writeEntries(ctx, tx, entries, true, aud)
	})
	if err != nil {
		return nil, err
	}
	s.runGets(ctx, r, entries)
	return s.respondBundle(r, "transaction-response", entries), nil
}

// transactionFailure combines the entries' own failures into the
// transaction's: every issue of every failed entry, with the status they
// agree on (400 when they differ).
func transactionFailure(entries []*bundleEntryReq) error {
	var out *fhir.Error
	for _, e := range entries {
		if e.err == nil {
			continue
		}
		st := fhir.StatusOf(e.err)
		if out == nil {
			out = &fhir.Error{Code: e.err.Code, Status: st}
		} else if out.Status != st {
			out.Code, out.Status = fhir.IssueInvalid, http.StatusBadRequest
		}
		out.Issues = append(out.Issues, e.err.Issues...)
	}
	if out == nil {
		return nil
	}
	return out
}

// writeEntries performs, in processing order, the write entries with
// (condRefs true) or without conditional references.
func (s *Server) writeEntries(ctx context.Context, tx fhir.Tx, entries []*bundleEntryReq, condRefs bool, aud fhir.Audience) error {
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut, http.MethodPatch} {
		for _, e := range entries {
			if e.method != method || e.condRefs != condRefs {
				continue
			}
			if err := s.writeEntry(ctx, tx, e, aud); err != nil {
				return entryError(e, err, "")
			}
		}
	}
	return nil
}

// condRefSite is a conditional reference (Type?criteria) inside an entry
// resource: in a transaction the server resolves it to the one resource
// the criteria match (http.html#trules).
type condRefSite struct {
	entry    *bundleEntryReq
	node     *fhir.Value
	typ      string
	criteria string
	path     string // FHIRPath-style location, for errors
}

// refWalker finds, under an entry resource, every object member named
// "reference" (in the resource proper, in contained resources and in
// extensions alike) whose string is another entry's fullUrl or a
// conditional reference.
type refWalker struct {
	s        *Server
	fullURLs map[string]bool
	entry    *bundleEntryReq
	path     []byte
	sites    []refSite
	conds    []condRefSite
}

func (w *refWalker) walk(v *fhir.Value) {
	n := len(w.path)
	switch v.Kind {
	case fhir.KindObject:
		for _, m := range v.Members {
			w.path = append(append(w.path[:n], '.'), m.Key...)
			if m.Key == "reference" && m.Value.Kind == fhir.KindString {
				w.reference(m.Value)
				continue
			}
			w.walk(m.Value)
		}
	case fhir.KindArray:
		for i, x := range v.Array {
			w.path = append(strconv.AppendInt(append(w.path[:n], '['), int64(i), 10), ']')
			w.walk(x)
		}
	}
	w.path = w.path[:n]
}

func (w *refWalker) reference(node *fhir.Value) {
	ref := node.Str
	if w.fullURLs[ref] {
		w.sites = append(w.sites, refSite{node, ref})
		return
	}
	ref = strings.TrimPrefix(ref, w.s.base+"/")
	typ, criteria, ok := strings.Cut(ref, "?")
	if !ok || strings.Contains(typ, "/") || !fhir.IsResourceType(typ) {
		return
	}
	w.entry.condRefs = true
	w.conds = append(w.conds, condRefSite{entry: w.entry, node: node, typ: typ, criteria: criteria, path: string(w.path)})
}

// resolveConditionalReference replaces a conditional reference with
// Type/id of the one resource its criteria match; none or several fail
// the transaction.
func (s *Server) resolveConditionalReference(ctx context.Context, tx fhir.Tx, tenant string, aud fhir.Audience, cr condRefSite) error {
	ids, err := s.matchCondition(ctx, tx, tenant, cr.typ, cr.criteria, aud, condReference)
	switch {
	case err != nil:
		return entryError(cr.entry, err, entryExpression("Bundle.entry["+strconv.Itoa(cr.entry.index)+"]", cr.entry.typ, cr.path))
	case len(ids) == 0:
		err = fhir.Errorf(fhir.IssueNotFound, cr.path, "conditional reference %s?%s matches no %s", cr.typ, cr.criteria, cr.typ)
	case len(ids) > 1:
		err = fhir.Errorf(fhir.IssueMultipleMatches, cr.path, "conditional reference %s?%s matches %d %s resources; it must match exactly one", cr.typ, cr.criteria, len(ids), cr.typ).
			WithStatus(http.StatusPreconditionFailed)
	default:
		cr.node.Str = cr.typ + "/" + ids[0]
		return nil
	}
	return entryError(cr.entry, err, "")
}

// resolveTargets decides, inside tx, which resource each write entry is
// about: new ids for creates, the match of a conditional create or
// update. Two entries resolving to one resource fail the transaction.
func (s *Server) resolveTargets(ctx context.Context, tx fhir.Tx, tenant string, aud fhir.Audience, entries []*bundleEntryReq) error {
	seen := make(map[fhir.Key]*bundleEntryReq, len(entries))
	for _, e := range entries {
		e.matched, e.out, e.status = false, fhir.Version{}, 0
		switch {
		case e.method == http.MethodPost && e.ifNoneExist != "":
			v, found, err := s.conditionalCreateMatch(ctx, tx, tenant, e.typ, criteriaOf(e.ifNoneExist), aud)
			if err != nil {
				return entryError(e, err, "Bundle.entry["+strconv.Itoa(e.index)+"].request.ifNoneExist")
			}
			if found {
				e.key, e.matched, e.out, e.status = v.Key, true, v, http.StatusOK
			} else {
				e.key = fhir.Key{Tenant: tenant, Type: e.typ, ID: s.newID()}
			}
		case e.method == http.MethodPost:
			e.key = fhir.Key{Tenant: tenant, Type: e.typ, ID: s.newID()}
		case e.method == http.MethodPut && e.id == "":
			id, err := s.conditionalUpdateID(ctx, tx, tenant, e.typ, e.query, e.bodyID, aud)
			if err != nil {
				return entryError(e, err, "Bundle.entry["+strconv.Itoa(e.index)+"].request.url")
			}
			e.key = fhir.Key{Tenant: tenant, Type: e.typ, ID: id}
		case e.condDelete:
			ids, err := s.matchConditionMax(ctx, tx, tenant, e.typ, e.query, aud, condWrite, maxConditionalDeletes+1)
			if err == nil && len(ids) > maxConditionalDeletes {
				err = fhir.Errorf(fhir.IssueMultipleMatches, "", "more than %d %s resources match %q; a conditional delete removes at most %d: narrow the criteria", maxConditionalDeletes, e.typ, e.query, maxConditionalDeletes).
					WithStatus(http.StatusPreconditionFailed)
			}
			if err != nil {
				return entryError(e, err, "Bundle.entry["+strconv.Itoa(e.index)+"].request.url")
			}
			e.condKeys, e.deleted = e.condKeys[:0], e.deleted[:0]
			for _, id := range ids {
				k := fhir.Key{Tenant: tenant, Type: e.typ, ID: id}
				if other, dup := seen[k]; dup {
					return duplicateError(e, other.index, k.Type+"/"+k.ID)
				}
				seen[k] = e
				e.condKeys = append(e.condKeys, k)
			}
			continue
		case e.method == http.MethodPatch && e.id == "":
			id, err := s.matchOne(ctx, tx, tenant, e.typ, e.query, aud)
			if err == nil && id == "" {
				err = fhir.Errorf(fhir.IssueNotFound, "", "no %s matches %q: a conditional patch needs one match", e.typ, e.query)
			}
			if err != nil {
				return entryError(e, err, "Bundle.entry["+strconv.Itoa(e.index)+"].request.url")
			}
			e.key = fhir.Key{Tenant: tenant, Type: e.typ, ID: id}
		case e.method == http.MethodPut || e.method == http.MethodDelete || e.method == http.MethodPatch:
			e.key = fhir.Key{Tenant: tenant, Type: e.typ, ID: e.id}
		default:
			continue
		}
		if other, dup := seen[e.key]; dup {
			return duplicateError(e, other.index, e.key.Type+"/"+e.key.ID)
		}
		seen[e.key] = e
	}
	return nil
}

// criteriaOf accepts If-None-Exist as the bare query, with a leading '?',
// or (as some clients send it) prefixed with the type.
func criteriaOf(h string) string {
	if _, q, ok := strings.Cut(h, "?"); ok {
		return q
	}
	return h
}

// writeEntry performs one resolved write entry inside tx.
func (s *Server) writeEntry(ctx context.Context, tx fhir.Tx, e *bundleEntryReq, aud fhir.Audience) (err error) {
	switch e.method {
	case http.MethodDelete:
		if e.condDelete {
			for _, k := range e.condKeys {
				v, _, err := s.deleteIn(ctx, tx, k, 0, aud)
				if err != nil {
					return err
				}
				e.deleted = append(e.deleted, v)
			}
			e.status = http.StatusOK
			return nil
		}
		e.out, e.status, err = s.deleteIn(ctx, tx, e.key, e.ifMatch, aud)
	case http.MethodPost:
		if e.matched {
			return nil
		}
		e.out, e.status, err = s.createIn(ctx, tx, e.key, e.res)
	case http.MethodPut:
		e.out, e.status, err = s.updateIn(ctx, tx, e.key, e.res, e.ifMatch, aud)
	case http.MethodPatch:
		e.out, err = s.patchIn(ctx, tx, e.key, e.patch, e.ifMatch, aud)
		e.status = http.StatusOK
	}
	return err
}
