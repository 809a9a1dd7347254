package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// Batch and transaction Bundles at POST / (http.html#transaction).
//
// A transaction runs every write entry inside one Store.Update, so it
// commits or vanishes whole: versions, index rows and history alike. A
// batch gives every entry its own Update and its own response. Both answer
// with a Bundle whose entries are in request order, whatever order they
// were processed in.

// bundleEntryReq is one Bundle entry as the server understood it, plus
// what processing it produced.
type bundleEntryReq struct {
	index   int
	fullURL string
	method  string
	rawURL  string // request.url as given, for messages
	typ, id string // the resource the URL names (id empty for POST and conditional forms)
	query   string // conditional criteria (PUT), or the query of a GET
	path    string // the URL path, relative to the base, for a GET
	res     *fhir.Value
	bodyID  string // the id in res before processing (stamp replaces it)

	ifNoneExist string
	ifMatch     int64
	// Passed on to a GET, which may answer 304.
	ifNoneMatch, ifModifiedSince string

	// err is this entry's failure: found before processing or while
	// processing. In a transaction any err fails the whole Bundle.
	err *fhir.Error

	// Results of a write.
	key     fhir.Key
	matched bool // a conditional create found the resource: nothing written
	// condRefs: the resource holds conditional references (Type?criteria)
	// to resolve before it is written.
	condRefs bool
	out      fhir.Version
	status   int

	// Result of a GET.
	got    *txEntryResponse
	gotRes json.RawMessage
}

func (e *bundleEntryReq) label() string {
	return e.method + " " + e.rawURL
}

// txEntryResponse is Bundle.entry.response of a batch-response or
// transaction-response.
type txEntryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

type txResponseEntry struct {
	FullURL  string           `json:"fullUrl,omitempty"`
	Resource json.RawMessage  `json:"resource,omitempty"`
	Response *txEntryResponse `json:"response"`
}

type txResponseBundle struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Meta         bundleMeta        `json:"meta"`
	Type         string            `json:"type"`
	Entry        []txResponseEntry `json:"entry,omitempty"`
}

// bundle handles POST /: a batch or a transaction.
func (s *Server) bundle(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(body) == 0 {
		s.fail(c, fhir.Errorf(fhir.IssueRequired, "", "the request body is empty: POST / takes a batch or transaction Bundle"))
		return
	}
	root, err := fhir.ParseJSON(body, s.lim.Resource)
	if err != nil {
		s.fail(c, err)
		return
	}
	if rt := root.GetString("resourceType"); rt != "Bundle" {
		s.fail(c, fhir.Errorf(fhir.IssueInvalid, "resourceType", "POST / takes a Bundle of type batch or transaction, not %q", rt))
		return
	}
	kind := root.GetString("type")
	if kind != "batch" && kind != "transaction" {
		s.fail(c, fhir.Errorf(fhir.IssueNotSupported, "Bundle.type", "Bundle.type %q cannot be processed at POST /: send a batch or a transaction", kind))
		return
	}
	if n := len(arrayOf(root.Get("entry"))); n > s.lim.MaxBundleEntries {
		// Refused before any entry is looked at: a batch's entries each
		// cost a store round trip, and all their answers are held at once.
		s.fail(c, fhir.Errorf(fhir.IssueTooLong, "Bundle.entry", "the %s has %d entries, more than %s: send it in several Bundles", kind, n,
			fhir.LimitText("max-bundle-entries", int64(s.lim.MaxBundleEntries))).WithStatus(http.StatusRequestEntityTooLarge))
		return
	}
	entries, err := s.parseBundle(root, kind == "transaction")
	if err != nil {
		s.fail(c, err)
		return
	}
	if kind == "transaction" {
		s.transaction(c, entries)
	} else {
		s.batch(c, entries)
	}
}

// parseBundle validates the Bundle and reads its entries. A problem with
// the Bundle itself is the returned error; a problem with one entry is
// recorded on it (a batch answers it in that entry's response, a
// transaction fails on it).
//
// Each entry resource is validated on its own rather than as part of the
// Bundle so that a batch can refuse one bad resource and keep the rest;
// the issues are re-pathed to Bundle.entry[i].resource so they read as if
// the Bundle had been validated whole.
func (s *Server) parseBundle(root *fhir.Value, transaction bool) ([]*bundleEntryReq, error) {
	items := arrayOf(root.Get("entry"))
	resources := make([]*fhir.Value, len(items))
	for i, it := range items {
		if it.Kind == fhir.KindObject {
			resources[i] = it.Get("resource")
			it.Delete("resource")
		}
	}
	shellIssues := fhir.Validate(root)
	for i, it := range items {
		if resources[i] != nil {
			it.Set("resource", resources[i])
		}
	}

	entries := make([]*bundleEntryReq, len(items))
	var bundleIssues []fhir.Issue
	for _, is := range shellIssues {
		if i, ok := entryOfExpression(is.Expression); ok && i < len(items) {
			addEntryIssue(&entries, i, is)
			continue
		}
		bundleIssues = append(bundleIssues, is)
	}
	if len(bundleIssues) > 0 {
		return nil, &fhir.Error{Code: fhir.IssueInvalid, Issues: bundleIssues}
	}
	for i, it := range items {
		e := entries[i]
		if e == nil {
			e = &bundleEntryReq{}
			entries[i] = e
		}
		e.index = i
		if e.err != nil {
			// The entry's own structure is broken; nothing more to learn.
			e.err.Status = http.StatusBadRequest
			continue
		}
		s.parseEntry(e, it, resources[i])
	}
	if transaction {
		checkDuplicateEntries(entries)
	}
	return entries, nil
}

// addEntryIssue records a validation issue of the Bundle shell on entry i.
func addEntryIssue(entries *[]*bundleEntryReq, i int, is fhir.Issue) {
	e := (*entries)[i]
	if e == nil {
		e = &bundleEntryReq{index: i}
		(*entries)[i] = e
	}
	if e.err == nil {
		e.err = &fhir.Error{Code: is.Code}
	}
	e.err.Issues = append(e.err.Issues, is)
}

// entryOfExpression returns i when the first expression is inside
// Bundle.entry[i].
func entryOfExpression(exprs []string) (int, bool) {
	if len(exprs) == 0 {
		return 0, false
	}
	rest, ok := strings.CutPrefix(exprs[0], "Bundle.entry[")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil && i >= 0
}

// parseEntry reads one entry's request and resource, recording the first
// problem on e.err.
func (s *Server) parseEntry(e *bundleEntryReq, it, res *fhir.Value) {
	at := "Bundle.entry[" + strconv.Itoa(e.index) + "]"
	req := it.Get("request")
	e.fullURL = it.GetString("fullUrl")
	e.method = req.GetString("method")
	e.rawURL = req.GetString("url")
	if req == nil || e.method == "" || e.rawURL == "" {
		e.err = fhir.Errorf(fhir.IssueRequired, at+".request", "entry %d needs request.method and request.url", e.index)
		return
	}
	e.ifNoneExist = req.GetString("ifNoneExist")
	e.ifNoneMatch = req.GetString("ifNoneMatch")
	e.ifModifiedSince = req.GetString("ifModifiedSince")
	if h := req.GetString("ifMatch"); h != "" {
		n, err := parseIfMatch(h)
		if err != nil {
			e.err = entryError(e, err, at+".request.ifMatch")
			return
		}
		e.ifMatch = n
	}

	u := e.rawURL
	if rest, ok := strings.CutPrefix(u, s.base+"/"); ok {
		u = rest
	} else if strings.Contains(u, "://") {
		e.err = fhir.Errorf(fhir.IssueNotSupported, at+".request.url", "entry %d: request.url %q is not on this server (%s); give it relative to the base, e.g. Patient/123", e.index, e.rawURL, s.base)
		return
	}
	u = strings.TrimLeft(u, "/")
	path, query, _ := strings.Cut(u, "?")
	e.path, e.query = path, query
	segs := strings.Split(path, "/")

	switch e.method {
	case http.MethodGet, http.MethodHead:
		// Dispatched through the router after the writes: whatever GET
		// supports, a GET entry supports, with the same answers.
		return
	case http.MethodPatch:
		e.err = fhir.Errorf(fhir.IssueNotSupported, at+".request.method", "entry %d: PATCH is not supported by this server", e.index)
		return
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		e.err = fhir.Errorf(fhir.IssueCodeInvalid, at+".request.method", "entry %d: request.method %q is not an HTTP verb of Bundles", e.index, e.method)
		return
	}
	e.typ = segs[0]
	if !fhir.IsResourceType(e.typ) {
		e.err = fhir.Errorf(fhir.IssueNotFound, at+".request.url", "entry %d: unknown resource type %q in request.url %q", e.index, e.typ, e.rawURL)
		return
	}
	switch {
	case e.method == http.MethodPost && len(segs) == 1 && query == "":
	case e.method == http.MethodPut && len(segs) == 1 && query != "":
	case (e.method == http.MethodPut || e.method == http.MethodDelete) && len(segs) == 2 && query == "":
		e.id = segs[1]
		if !idPattern.MatchString(e.id) {
			e.err = fhir.Errorf(fhir.IssueInvalid, at+".request.url", "entry %d: %q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", e.index, e.id)
			return
		}
	case e.method == http.MethodDelete && len(segs) == 1:
		e.err = fhir.Errorf(fhir.IssueNotSupported, at+".request.url", "entry %d: conditional delete (%s) is not supported; delete by id: DELETE %s/{id}", e.index, e.rawURL, e.typ)
		return
	default:
		e.err = fhir.Errorf(fhir.IssueNotSupported, at+".request.url", "entry %d: %s %s is not an interaction this server supports in a Bundle (POST Type, PUT Type/id, PUT Type?criteria, DELETE Type/id, GET anything)", e.index, e.method, e.rawURL)
		return
	}
	if e.method == http.MethodDelete {
		return
	}

	if res == nil {
		e.err = fhir.Errorf(fhir.IssueRequired, at+".resource", "entry %d: %s needs a resource", e.index, e.method)
		return
	}
	if issues := fhir.Validate(res); len(issues) > 0 {
		e.err = entryError(e, &fhir.Error{Code: fhir.IssueInvalid, Issues: issues}, "")
		return
	}
	if rt := res.GetString("resourceType"); rt != e.typ {
		e.err = fhir.Errorf(fhir.IssueInvalid, at+".resource.resourceType", "entry %d: resourceType %q does not match request.url %q", e.index, rt, e.rawURL)
		return
	}
	e.res = res
	e.bodyID = res.GetString("id")
	if e.method == http.MethodPut && e.id != "" {
		switch {
		case e.bodyID == "":
			e.err = fhir.Errorf(fhir.IssueRequired, at+".resource.id", "entry %d: an update must carry the id %q in the resource", e.index, e.id)
		case e.bodyID != e.id:
			e.err = fhir.Errorf(fhir.IssueInvalid, at+".resource.id", "entry %d: resource id %q does not match the id %q in request.url", e.index, e.bodyID, e.id)
		}
	}
}

// checkDuplicateEntries refuses a transaction naming one resource twice
// by fullUrl or by Type/id in its URL (http.html#trules: the outcome
// would depend on processing order). Conditional entries are checked once
// their criteria are resolved, in resolveTargets.
func checkDuplicateEntries(entries []*bundleEntryReq) {
	byURL := map[string]int{}
	byKey := map[string]int{}
	for _, e := range entries {
		if e.err != nil {
			continue
		}
		if e.fullURL != "" {
			if j, dup := byURL[e.fullURL]; dup {
				e.err = duplicateError(e, j, "fullUrl "+strconv.Quote(e.fullURL))
				continue
			}
			byURL[e.fullURL] = e.index
		}
		if e.id != "" {
			k := e.typ + "/" + e.id
			if j, dup := byKey[k]; dup {
				e.err = duplicateError(e, j, k)
				continue
			}
			byKey[k] = e.index
		}
	}
}

func duplicateError(e *bundleEntryReq, other int, what string) *fhir.Error {
	at := "Bundle.entry[" + strconv.Itoa(e.index) + "]"
	err := fhir.Errorf(fhir.IssueDuplicate, at, "entries %d and %d of the transaction are both about %s; a transaction may touch each resource once", other, e.index, what)
	err.Issues[0].Expression = append(err.Issues[0].Expression, "Bundle.entry["+strconv.Itoa(other)+"]")
	return err.WithStatus(http.StatusBadRequest)
}

// entryError re-reports err as a failure of entry e: every issue names
// the entry (the resource's own paths become Bundle.entry[i].resource...),
// the status stays the one the interaction would have answered, and the
// cause is kept (for the log, and so that Store.Update still recognizes a
// version conflict to retry). where is the expression for issues without
// one ("" for the entry itself).
func entryError(e *bundleEntryReq, err error, where string) *fhir.Error {
	fe := fhir.AsError(err)
	at := "Bundle.entry[" + strconv.Itoa(e.index) + "]"
	if where == "" {
		where = at
	}
	rt := e.typ
	if e.res != nil {
		rt = e.res.GetString("resourceType")
	}
	out := &fhir.Error{Code: fe.Code, Status: fhir.StatusOf(fe), Err: err, Issues: make([]fhir.Issue, len(fe.Issues))}
	for i, is := range fe.Issues {
		exprs := make([]string, 0, max(1, len(is.Expression)))
		for _, x := range is.Expression {
			exprs = append(exprs, entryExpression(at, rt, x))
		}
		if len(exprs) == 0 {
			exprs = append(exprs, where)
		}
		is.Expression = exprs
		if e.method != "" && !strings.HasPrefix(is.Diagnostics, "entry ") {
			is.Diagnostics = "entry " + strconv.Itoa(e.index) + " (" + e.label() + "): " + is.Diagnostics
		}
		out.Issues[i] = is
	}
	return out
}

// entryExpression maps an expression about the entry's resource (rooted
// at its type, or relative) to one rooted at the Bundle.
func entryExpression(at, rt, x string) string {
	switch {
	case strings.HasPrefix(x, "Bundle."):
		return x
	case rt != "" && x == rt:
		return at + ".resource"
	case rt != "" && strings.HasPrefix(x, rt+"."), rt != "" && strings.HasPrefix(x, rt+"["):
		return at + ".resource" + x[len(rt):]
	}
	return at + ".resource." + x
}

// ---- transaction ----

// refSite is one Reference.reference string inside an entry resource that
// names another entry's fullUrl.
type refSite struct {
	node    *fhir.Value
	fullURL string
}

// transaction processes entries all or nothing.
func (s *Server) transaction(c *gin.Context, entries []*bundleEntryReq) {
	if err := transactionFailure(entries); err != nil {
		s.fail(c, err)
		return
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
	}

	writes := false
	for _, e := range entries {
		writes = writes || e.method != http.MethodGet && e.method != http.MethodHead
	}
	if !writes {
		// Reads only: no store transaction to open.
		s.runGets(c, entries)
		s.respondBundle(c, "transaction-response", entries)
		return
	}
	tenant, aud := tenantOf(c), audienceOf(c)
	ctx := c.Request.Context()
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
		s.fail(c, err)
		return
	}
	s.runGets(c, entries)
	s.respondBundle(c, "transaction-response", entries)
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
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut} {
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
		case e.method == http.MethodPut || e.method == http.MethodDelete:
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
		e.out, e.status, err = s.deleteIn(ctx, tx, e.key, e.ifMatch, aud)
	case http.MethodPost:
		if e.matched {
			return nil
		}
		e.out, e.status, err = s.createIn(ctx, tx, e.key, e.res)
	case http.MethodPut:
		e.out, e.status, err = s.updateIn(ctx, tx, e.key, e.res, e.ifMatch, aud)
	}
	return err
}

// ---- batch ----

// batch processes each entry on its own: a failure is that entry's
// response, and the others still land. Entries go in the transaction
// order (DELETE, POST, PUT, GET) so a batch and a transaction of the same
// independent entries do the same thing; references are left as sent,
// since batch entries must not depend on one another.
//
// Within one method the entries run concurrently (up to batchWorkers at a
// time): they are independent by definition, and concurrent Updates share
// commits (the SQLite store's group commit), so a large batch costs a few
// fsyncs instead of one per entry. When two entries name the same
// resource by id they run one after another, in request order, so the
// outcome does not depend on scheduling.
func (s *Server) batch(c *gin.Context, entries []*bundleEntryReq) {
	tenant, aud := tenantOf(c), audienceOf(c)
	ctx := c.Request.Context()
	workers := batchWorkers
	seen := map[string]bool{}
	for _, e := range entries {
		if e.id != "" && e.err == nil {
			k := e.typ + "/" + e.id
			if seen[k] {
				workers = 1
				break
			}
			seen[k] = true
		}
	}
	run := func(e *bundleEntryReq) {
		err := s.store.Update(ctx, func(tx fhir.Tx) error {
			if err := s.resolveTargets(ctx, tx, tenant, aud, []*bundleEntryReq{e}); err != nil {
				return err
			}
			return s.writeEntry(ctx, tx, e, aud)
		})
		if err != nil {
			e.err = entryError(e, s.entryTimeout(ctx, err), "")
			if e.err.Status >= 500 {
				s.logEntryFailure(c, e)
			}
		}
	}
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut} {
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for _, e := range entries {
			if e.err != nil || e.method != method {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				run(e)
			})
		}
		wg.Wait()
	}
	s.runGets(c, entries)
	s.respondBundle(c, "batch-response", entries)
}

// batchWorkers bounds how many entries of one batch write at once.
const batchWorkers = 16

// logEntryFailure logs the cause of a batch entry's server error, which
// its response does not carry.
func (s *Server) logEntryFailure(c *gin.Context, e *bundleEntryReq) {
	s.log.ErrorContext(c.Request.Context(), "batch entry failed",
		"request_id", c.GetString(ctxRequestID), "entry", e.index, "cause", e.err.Err)
}

// ---- GET entries and the response ----

// runGets answers the GET (and HEAD) entries by sending them through the
// router, after the writes: they see what the Bundle wrote, and every
// read or search the server supports works in a Bundle the same way.
func (s *Server) runGets(c *gin.Context, entries []*bundleEntryReq) {
	for _, e := range entries {
		if e.err != nil || (e.method != http.MethodGet && e.method != http.MethodHead) {
			continue
		}
		if err := c.Request.Context().Err(); err != nil {
			// Out of time: the rest are answered without running.
			e.err = entryError(e, s.entryTimeout(c.Request.Context(), err), "")
			continue
		}
		target := "/" + e.path
		if e.query != "" {
			target += "?" + e.query
		}
		req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, target, nil)
		if err != nil {
			e.err = entryError(e, fhir.Errorf(fhir.IssueInvalid, "", "request.url %q is not a valid URL", e.rawURL), "Bundle.entry["+strconv.Itoa(e.index)+"].request.url")
			continue
		}
		req.Header.Set("Accept", mimeFHIRJSON)
		req.Header.Set("X-Request-Id", c.GetString(ctxRequestID))
		if e.ifNoneMatch != "" {
			req.Header.Set("If-None-Match", e.ifNoneMatch)
		}
		if e.ifModifiedSince != "" {
			req.Header.Set("If-Modified-Since", e.ifModifiedSince)
		}
		rec := httptest.NewRecorder()
		s.engine.ServeHTTP(rec, req)
		resp := &txEntryResponse{Status: statusLine(rec.Code), Etag: rec.Header().Get("ETag"),
			Location: rec.Header().Get("Content-Location")}
		if lm, err := http.ParseTime(rec.Header().Get("Last-Modified")); err == nil {
			resp.LastModified = write.FormatInstant(lm)
		}
		body := rec.Body.Bytes()
		switch {
		case len(body) == 0 || body[0] != '{':
		case rec.Code >= 400:
			resp.Outcome = body
		case e.method == http.MethodGet:
			e.gotRes = body
		}
		e.got = resp
	}
}

// statusLine is the code and reason phrase, e.g. "201 Created".
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// respondBundle answers with the response Bundle, one entry per request
// entry in request order.
func (s *Server) respondBundle(c *gin.Context, kind string, entries []*bundleEntryReq) {
	prefer := preferReturn(c)
	out := txResponseBundle{ResourceType: "Bundle", ID: s.newID(), Type: kind,
		Meta: bundleMeta{LastUpdated: write.FormatInstant(s.now())}, Entry: make([]txResponseEntry, len(entries))}
	for i, e := range entries {
		re := &out.Entry[i]
		switch {
		case e.err != nil:
			re.Response = &txEntryResponse{Status: statusLine(fhir.StatusOf(e.err)), Outcome: fhir.OperationOutcomeMax(e.err.Issues, s.lim.MaxIssues)}
		case e.got != nil:
			re.Response, re.Resource = e.got, e.gotRes
		default:
			v := e.out
			re.Response = &txEntryResponse{Status: statusLine(e.status), Etag: etag(v.VersionID),
				LastModified: write.FormatInstant(v.LastUpdated)}
			if v.Deleted {
				break
			}
			re.FullURL = s.base + "/" + v.Type + "/" + v.ID
			re.Response.Location = s.location(v)
			switch prefer {
			case "minimal":
			case "OperationOutcome":
				re.Response.Outcome = fhir.OperationOutcome([]fhir.Issue{{Severity: fhir.SeverityInformation,
					Code: fhir.IssueInformational, Diagnostics: entrySummary(e)}})
			default:
				re.Resource = v.JSON
			}
		}
	}
	writeJSON(c, http.StatusOK, marshalJSON(out))
}

// entrySummary says what a successful write entry did.
func entrySummary(e *bundleEntryReq) string {
	v := e.out
	switch {
	case e.matched:
		return "matched existing " + v.Type + "/" + v.ID + " (conditional create); nothing written"
	case e.status == http.StatusCreated:
		return "created " + v.Type + "/" + v.ID + " version " + itoa(v.VersionID)
	}
	return "updated " + v.Type + "/" + v.ID + " to version " + itoa(v.VersionID)
}
