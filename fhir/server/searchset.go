package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// Paging: next links carry the store's cursor in _cursor, opaque to
// clients: base64url of JSON, bound to the query it continues so it cannot
// be replayed against another search.

type wireCursor struct {
	Snapshot int64    `json:"s"`
	After    []string `json:"a,omitempty"`
	AfterID  string   `json:"i,omitempty"`
	Query    string   `json:"q"`
}

// queryFingerprint identifies a search's criteria (not its paging).
func queryFingerprint(scope string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "_cursor" && k != "_format" && k != "_pretty" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(scope))
	for _, k := range keys {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		h.Write([]byte{0})
		h.Write([]byte(k))
		for _, v := range vs {
			h.Write([]byte{1})
			h.Write([]byte(v))
		}
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

func encodeCursor(c *search.Cursor, fingerprint string) string {
	b, _ := json.Marshal(wireCursor{Snapshot: c.Snapshot, After: c.After, AfterID: c.AfterID, Query: fingerprint})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads _cursor; "" gives nil (first page).
func decodeCursor(raw, fingerprint string) (*search.Cursor, error) {
	if raw == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	var w wireCursor
	if err == nil {
		err = json.Unmarshal(b, &w)
	}
	if err != nil || w.Snapshot <= 0 {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "_cursor is not a paging cursor this server issued; follow the Bundle's next link")
	}
	if w.Query != fingerprint {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "_cursor belongs to a different search; follow the Bundle's next link unchanged")
	}
	return &search.Cursor{Snapshot: w.Snapshot, After: w.After, AfterID: w.AfterID}, nil
}

// linkParams returns params without _cursor and without the ignored
// parameters, for self and next links.
func linkParams(params url.Values, ignored []string) url.Values {
	drop := map[string]bool{"_cursor": true}
	for _, k := range ignored {
		drop[k] = true
	}
	out := url.Values{}
	for k, vs := range params {
		name, _, _ := strings.Cut(k, ":")
		if drop[k] || drop[name] {
			continue
		}
		out[k] = vs
	}
	return out
}

func withQuery(path string, params url.Values) string {
	if enc := params.Encode(); enc != "" {
		return path + "?" + enc
	}
	return path
}

type searchEntryMode struct {
	Mode string `json:"mode"`
}

type searchEntry struct {
	FullURL  string           `json:"fullUrl,omitempty"`
	Resource json.RawMessage  `json:"resource"`
	Search   *searchEntryMode `json:"search,omitempty"`
}

type searchBundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Meta         bundleMeta    `json:"meta"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link"`
	Entry        []searchEntry `json:"entry,omitempty"`
}

// searchsetBundle renders one page of results.
func (s *Server) searchsetBundle(path string, params url.Values, q *search.Query, res search.Result, fingerprint string) []byte {
	var next string
	if res.Next != nil {
		np := linkParams(params, q.Ignored)
		np.Set("_cursor", encodeCursor(res.Next, fingerprint))
		next = withQuery(s.base+path, np)
	}
	return s.searchsetPage(path, params, q, res, next)
}

// searchsetPage renders one page of results whose next page is at next
// ("" on the last page).
func (s *Server) searchsetPage(path string, params url.Values, q *search.Query, res search.Result, next string) []byte {
	lp := linkParams(params, q.Ignored)
	b := searchBundle{ResourceType: "Bundle", ID: s.newID(), Type: "searchset",
		Meta: bundleMeta{LastUpdated: write.FormatInstant(s.now())},
		Link: []bundleLink{{Relation: "self", URL: withQuery(s.base+path, lp)}}}
	if res.Total >= 0 {
		total := res.Total
		b.Total = &total
	}
	if next != "" {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: next})
	}
	if q.Summary != "count" {
		for _, v := range res.Matches {
			b.Entry = append(b.Entry, searchEntry{FullURL: s.base + "/" + v.Type + "/" + v.ID,
				Resource: shapeResource(v, q), Search: &searchEntryMode{"match"}})
		}
		for _, v := range res.Included {
			b.Entry = append(b.Entry, searchEntry{FullURL: s.base + "/" + v.Type + "/" + v.ID,
				Resource: shapeResource(v, q), Search: &searchEntryMode{"include"}})
		}
	}
	if len(q.Ignored) > 0 {
		issues := make([]fhir.Issue, 0, len(q.Ignored))
		for _, p := range q.Ignored {
			issues = append(issues, fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueNotSupported,
				Diagnostics: "search parameter " + p + " is unknown or not supported here and was ignored (send Prefer: handling=strict to have such searches refused)"})
		}
		b.Entry = append(b.Entry, searchEntry{Resource: fhir.OperationOutcome(issues), Search: &searchEntryMode{"outcome"}})
	}
	out := marshalJSON(b)
	return out
}

// shapeResource applies _summary and _elements to a stored resource. A
// subsetted resource is tagged SUBSETTED, as the specification requires.
func shapeResource(v fhir.Version, q *search.Query) json.RawMessage {
	keep := keepFunc(v.Type, q)
	if keep == nil {
		return v.JSON
	}
	root, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		return v.JSON // stored JSON always parses; never lose a resource over it
	}
	kept := root.Members[:0:0]
	for _, m := range root.Members {
		name := strings.TrimPrefix(m.Key, "_")
		if keep(name) {
			kept = append(kept, m)
		}
	}
	root.Members = kept
	meta := root.Get("meta")
	if meta == nil {
		meta = fhir.Object()
		root.Set("meta", meta)
	}
	tag := fhir.Object()
	tag.Set("system", fhir.String("http://terminology.hl7.org/CodeSystem/v3-ObservationValue"))
	tag.Set("code", fhir.String("SUBSETTED"))
	tag.Set("display", fhir.String("subsetted"))
	if tags := meta.Get("tag"); tags != nil && tags.Kind == fhir.KindArray {
		tags.Array = append(tags.Array, tag)
	} else {
		meta.Set("tag", &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{tag}})
	}
	return root.Encode()
}

// keepFunc returns which top-level elements survive q's _summary and
// _elements, or nil when the resource is returned whole.
func keepFunc(typ string, q *search.Query) func(string) bool {
	always := func(n string) bool { return n == "resourceType" || n == "id" || n == "meta" }
	switch q.Summary {
	case "true":
		return func(n string) bool { return always(n) || fhir.IsSummaryElement(typ, n) }
	case "text":
		return func(n string) bool { return always(n) || n == "text" || fhir.IsRequiredElement(typ, n) }
	case "data":
		return func(n string) bool { return n != "text" }
	}
	if len(q.Elements) > 0 {
		want := map[string]bool{}
		for _, e := range q.Elements {
			want[e] = true
		}
		return func(n string) bool { return always(n) || want[n] || fhir.IsRequiredElement(typ, n) }
	}
	return nil
}
