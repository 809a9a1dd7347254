package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// The GET entries of a batch or transaction, and the response Bundle.

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

// runGets answers the GET (and HEAD) entries after the writes, each by
// the interaction the route table names for it (Do), with the caller's
// tenant and audience: they see what the Bundle wrote, and every read or
// search the server supports works in a Bundle the same way, with the
// same answers.
func (s *Server) runGets(ctx context.Context, r *Request, entries []*bundleEntryReq) {
	for _, e := range entries {
		if e.err != nil || (e.method != http.MethodGet && e.method != http.MethodHead) {
			continue
		}
		if err := ctx.Err(); err != nil {
			// Out of time: the rest are answered without running.
			e.err = entryError(e, s.entryTimeout(ctx, err), "")
			continue
		}
		target := "/" + e.path
		if e.query != "" {
			target += "?" + e.query
		}
		u, err := url.Parse(target)
		if err != nil {
			e.err = entryError(e, fhir.Errorf(fhir.IssueInvalid, "", "request.url %q is not a valid URL", e.rawURL), "Bundle.entry["+strconv.Itoa(e.index)+"].request.url")
			continue
		}
		h := http.Header{}
		h.Set("Accept", mimeFHIRJSON)
		if e.ifNoneMatch != "" {
			h.Set("If-None-Match", e.ifNoneMatch)
		}
		if e.ifModifiedSince != "" {
			h.Set("If-Modified-Since", e.ifModifiedSince)
		}
		get := &Request{Method: http.MethodGet, URL: u, Header: h, Tenant: r.Tenant, Audience: r.Audience, RequestID: r.RequestID}
		resp, err := s.doEntry(ctx, get)
		var status int
		var body []byte
		header := http.Header{}
		if resp != nil && resp.Header != nil {
			header = resp.Header
		}
		if err != nil {
			status, body = s.outcome(ctx, r.RequestID, u.Path, err)
		} else {
			status, body = resp.Status, resp.Body
		}
		got := &txEntryResponse{Status: statusLine(status), Etag: header.Get("ETag"), Location: header.Get("Content-Location")}
		if lm, err := http.ParseTime(header.Get("Last-Modified")); err == nil {
			got.LastModified = write.FormatInstant(lm)
		}
		switch {
		case len(body) == 0 || body[0] != '{':
		case status >= 400:
			got.Outcome = body
		case e.method == http.MethodGet:
			e.gotRes = body
		}
		e.got, e.gotStatus = got, status
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
func (s *Server) respondBundle(r *Request, kind string, entries []*bundleEntryReq) *Response {
	prefer := preferReturn(r.Header)
	out := txResponseBundle{ResourceType: "Bundle", ID: s.newID(), Type: kind,
		Meta: bundleMeta{LastUpdated: write.FormatInstant(s.now())}, Entry: make([]txResponseEntry, len(entries))}
	for i, e := range entries {
		re := &out.Entry[i]
		switch {
		case e.err != nil:
			re.Response = &txEntryResponse{Status: statusLine(fhir.StatusOf(e.err)), Outcome: fhir.OperationOutcomeMax(e.err.Issues, s.lim.MaxIssues)}
		case e.got != nil:
			re.Response, re.Resource = e.got, e.gotRes
		case e.condDelete:
			re.Response = &txEntryResponse{Status: statusLine(e.status), Outcome: conditionalDeleteOutcome(e.typ, e.deleted, s.lim.MaxIssues)}
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
				issues := []fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational, Diagnostics: entrySummary(e)}}
				if !e.matched {
					issues = append(issues, s.writeWarnings(v)...)
				}
				re.Response.Outcome = fhir.OperationOutcomeMax(issues, s.lim.MaxIssues)
			default:
				re.Resource = v.JSON
			}
		}
	}
	return &Response{Status: http.StatusOK, Body: marshalJSON(out)}
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
