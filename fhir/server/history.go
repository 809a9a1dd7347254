package server

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// history handles GET /{type}/{id}/_history: the versions of one
// resource, newest first, deletions included; _since, _at and _count as
// for the other history levels.
func (s *Server) history(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	hp, err := parseHistoryParams(r.URL.Query())
	if err != nil {
		return nil, err
	}
	aud := r.Audience
	versions, err := s.store.History(ctx, k, 0)
	if errors.Is(err, fhir.ErrNotFound) || err == nil && (len(versions) == 0 || hidden(aud, versions[0])) {
		err = notFound(fhir.ErrNotFound, k)
	}
	if err != nil {
		return nil, err
	}
	// One resource's versions are few; filter and page them here. _at
	// looks at every version (the one current at that instant may be
	// withheld, and then there is none to show), so withheld versions go
	// after it.
	var kept []fhir.Version
	for i, v := range versions {
		us := v.LastUpdated.UnixMicro()
		if hp.Since != 0 && us < hp.Since {
			continue
		}
		// _at: the version current at that instant is the newest one
		// written at or before it.
		if hp.At != 0 && (us > hp.At || i > 0 && versions[i-1].LastUpdated.UnixMicro() <= hp.At) {
			continue
		}
		if aud.Withholds(v) {
			continue
		}
		kept = append(kept, v)
	}
	self := s.base + "/" + k.Type + "/" + k.ID + "/_history"
	params := r.URL.Query()
	// The cursor is the last versionId shown: the next page continues
	// below it, so versions written meanwhile never shift a page.
	if raw := params.Get("_cursor"); raw != "" {
		below, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || below < 1 {
			return nil, fhir.Errorf(fhir.IssueInvalid, "", "_cursor is not a paging cursor this server issued; follow the Bundle's next link")
		}
		n := 0
		for n < len(kept) && kept[n].VersionID >= below {
			n++
		}
		kept = kept[n:]
	}
	page := kept
	var next string
	if hp.Count > 0 && len(kept) > hp.Count {
		page = kept[:hp.Count]
		np := url.Values{}
		for k, v := range params {
			np[k] = v
		}
		np.Set("_cursor", strconv.FormatInt(page[len(page)-1].VersionID, 10))
		next = withQuery(self, np)
	}
	params.Del("_cursor")
	return &Response{Status: http.StatusOK, Body: s.historyBundle(withQuery(self, params), next, page, -1)}, nil
}

// typeHistory handles GET /{type}/_history.
func (s *Server) typeHistory(ctx context.Context, r *Request) (*Response, error) {
	return s.historyPage(ctx, r, r.params.typ, "/"+r.params.typ+"/_history")
}

// systemHistory handles GET /_history.
func (s *Server) systemHistory(ctx context.Context, r *Request) (*Response, error) {
	return s.historyPage(ctx, r, "", "/_history")
}

func (s *Server) historyPage(ctx context.Context, r *Request, typ, path string) (*Response, error) {
	params := r.URL.Query()
	hq, err := parseHistoryParams(params)
	if err != nil {
		return nil, err
	}
	hq.Type = typ
	hq.Hide = r.Audience.Hidden()
	fp := queryFingerprint(path, params)
	if hq.Cursor, err = decodeCursor(params.Get("_cursor"), fp); err != nil {
		return nil, err
	}
	res, err := s.store.HistoryPage(ctx, r.tenant(), hq)
	if err != nil {
		return nil, err
	}
	lp := linkParams(params, nil)
	var next string
	if res.Next != nil {
		np := url.Values{}
		for k, v := range lp {
			np[k] = v
		}
		np.Set("_cursor", encodeCursor(res.Next, fp))
		next = withQuery(s.base+path, np)
	}
	return &Response{Status: http.StatusOK, Body: s.historyBundle(withQuery(s.base+path, lp), next, s.visible(ctx, r.Audience, res.Versions), res.Total)}, nil
}

// parseHistoryParams reads _since, _at and _count. History is not search:
// any other parameter is refused rather than ignored.
func parseHistoryParams(params url.Values) (search.HistoryQuery, error) {
	var hq search.HistoryQuery
	// In key order, so that of several problems the same one is reported
	// every time.
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vs := params[k]
		if len(vs) != 1 {
			return hq, fhir.Errorf(fhir.IssueInvalid, "", "history parameter %s given %d times", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "_format", "_pretty", "_cursor":
		case "_since":
			hq.Since, err = parseInstantParam(k, v)
		case "_at":
			hq.At, err = parseInstantParam(k, v)
		case "_count":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 {
				return hq, fhir.Errorf(fhir.IssueInvalid, "", "_count=%q: want a positive integer", v)
			}
			hq.Count = min(n, 1000)
		default:
			return hq, fhir.Errorf(fhir.IssueNotSupported, "", "history parameter %q is not supported (use _since, _at, _count)", k)
		}
		if err != nil {
			return hq, err
		}
	}
	return hq, nil
}

// parseInstantParam reads a _since/_at value: a FHIR instant or dateTime;
// without a zone it is UTC; a partial date means its start.
func parseInstantParam(name, v string) (int64, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().UnixMicro(), nil
		}
	}
	return 0, fhir.Errorf(fhir.IssueInvalid, "", "%s=%q is not a FHIR instant or dateTime (e.g. 2026-11-26T09:00:00Z)", name, v)
}
