package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// Batch and transaction Bundles at POST / (http.html#transaction): this
// file takes the request; bundle_parse.go reads the entries,
// transaction.go and batch.go run them, bundle_response.go runs the GET
// entries and answers.
//
// A transaction runs every write entry inside one Store.Update, so it
// commits or vanishes whole: versions, index rows and history alike. A
// batch gives every entry its own Update and its own response. Both answer
// with a Bundle whose entries are in request order, whatever order they
// were processed in.

// bundle handles POST /: a batch or a transaction.
func (s *Server) bundle(ctx context.Context, r *Request) (*Response, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fhir.Errorf(fhir.IssueRequired, "", "the request body is empty: POST / takes a batch or transaction Bundle")
	}
	root, err := fhir.ParseJSON(body, s.lim.Resource)
	if err != nil {
		return nil, err
	}
	if rt := root.GetString("resourceType"); rt != "Bundle" {
		return nil, fhir.Errorf(fhir.IssueInvalid, "resourceType", "POST / takes a Bundle of type batch or transaction, not %q", rt)
	}
	kind := root.GetString("type")
	if kind != "batch" && kind != "transaction" {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "Bundle.type", "Bundle.type %q cannot be processed at POST /: send a batch or a transaction", kind)
	}
	if n := len(arrayOf(root.Get("entry"))); n > s.lim.MaxBundleEntries {
		// Refused before any entry is looked at: a batch's entries each
		// cost a store round trip, and all their answers are held at once.
		return nil, fhir.Errorf(fhir.IssueTooLong, "Bundle.entry", "the %s has %d entries, more than %s: send it in several Bundles", kind, n,
			fhir.LimitText("max-bundle-entries", int64(s.lim.MaxBundleEntries))).WithStatus(http.StatusRequestEntityTooLarge)
	}
	r.bundleKind = kind
	entries, err := s.parseBundle(root, kind == "transaction")
	if err != nil {
		return nil, err
	}
	var resp *Response
	if kind == "transaction" {
		resp, err = s.transaction(ctx, r, entries)
	} else {
		resp, err = s.batch(ctx, r, entries)
	}
	r.entryAudit = entryAudit(entries, err)
	return resp, err
}

// The pieces of Bundle JSON the server writes (searchset.go, historyset.go,
// bundle_response.go).

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

// marshalJSON encodes v without HTML escaping, so URLs in links keep
// their & rather than \u0026 (both are valid JSON; this is what people
// and naive clients read).
func marshalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}
