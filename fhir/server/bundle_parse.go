package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/patch"
)

// Reading a batch or transaction Bundle into its entries: each one's
// request and resource, validated, with the problems of each entry kept
// on it.

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
	bodyID  string      // the id in res before processing (stamp replaces it)
	patch   patch.Patch // a PATCH entry's patch (res is then nil)
	// condDelete: DELETE Type?criteria, which deletes every match
	// (condKeys, resolved in the transaction; deleted, what it wrote).
	condDelete bool
	condKeys   []fhir.Key
	deleted    []fhir.Version

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
	got       *txEntryResponse
	gotRes    json.RawMessage
	gotStatus int
}

func (e *bundleEntryReq) label() string {
	return e.method + " " + e.rawURL
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
		// Run through the route table after the writes (Do): whatever GET
		// supports, a GET entry supports, with the same answers.
		return
	case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
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
	case (e.method == http.MethodPut || e.method == http.MethodPatch) && len(segs) == 1 && query != "":
	case (e.method == http.MethodPut || e.method == http.MethodDelete || e.method == http.MethodPatch) && len(segs) == 2 && query == "":
		e.id = segs[1]
		if !idPattern.MatchString(e.id) {
			e.err = fhir.Errorf(fhir.IssueInvalid, at+".request.url", "entry %d: %q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", e.index, e.id)
			return
		}
	case e.method == http.MethodDelete && len(segs) == 1 && query != "":
		e.condDelete = true
	default:
		e.err = fhir.Errorf(fhir.IssueNotSupported, at+".request.url", "entry %d: %s %s is not an interaction this server supports in a Bundle (POST Type, PUT Type/id, PUT Type?criteria, PATCH Type/id, PATCH Type?criteria, DELETE Type/id, DELETE Type?criteria, GET anything)", e.index, e.method, e.rawURL)
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
	if e.method == http.MethodPatch {
		s.parseEntryPatch(e, res, at)
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

// parseEntryPatch reads a PATCH entry's patch: a FHIRPath Patch (a
// Parameters resource) or a JSON Patch (a Binary of contentType
// application/json-patch+json, its data the document), as the
// specification carries them in Bundles.
func (s *Server) parseEntryPatch(e *bundleEntryReq, res *fhir.Value, at string) {
	var err error
	switch rt := res.GetString("resourceType"); rt {
	case "Parameters":
		e.patch, err = patch.ParseFHIRPathPatch(res)
	case "Binary":
		if ct := res.GetString("contentType"); ct != mimeJSONPatch {
			err = fhir.Errorf(fhir.IssueNotSupported, at+".resource.contentType", "entry %d: a Binary patch must have contentType %s, not %q", e.index, mimeJSONPatch, ct)
			break
		}
		data, derr := base64.StdEncoding.DecodeString(res.GetString("data"))
		if derr != nil {
			err = fhir.Errorf(fhir.IssueInvalid, at+".resource.data", "entry %d: Binary.data is not base64", e.index)
			break
		}
		e.patch, err = patch.ParseJSONPatch(data, s.lim.Resource)
	default:
		err = fhir.Errorf(fhir.IssueInvalid, at+".resource.resourceType", "entry %d: a PATCH entry carries a Parameters (FHIRPath Patch) or a Binary (JSON Patch), not a %s", e.index, rt)
	}
	if err != nil {
		e.err = entryError(e, err, at+".resource")
	}
}
