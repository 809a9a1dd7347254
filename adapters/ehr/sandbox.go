package ehr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The sandbox plays a real EHR in front of kapbridge's FHIR API: it
// refuses, as that EHR would, every interaction the EHR's
// CapabilityStatement does not declare, and serves that statement at
// /metadata. Integration engineers rehearse against it; the sync tests
// use it as the EHR.

// MaxSandboxBundleBytes bounds a Bundle the filter reads to check its
// entries (kapbridge's own default body limit).
const MaxSandboxBundleBytes = 16 << 20

// CapabilityFilter returns middleware for a FHIR API mounted at the root:
// GET /metadata answers c's statement as received (c.Raw); every other
// request is mapped to the interaction it is (create, conditional create,
// read, vread, update, update as create, conditional update, patch,
// delete, conditional delete, search, history at each level, operations,
// and transaction or batch Bundles with each of their entries) and
// refused with 405 and an OperationOutcome naming the interaction and the
// statement unless c declares it. What is not a FHIR interaction (an
// unknown path or type, another method) goes on unchanged, for the API to
// answer.
//
// An update of a resource that does not exist yet is a create by update,
// allowed only where the statement declares updateCreate; the filter asks
// the API (a read of the same id, never seen by the client) whether it
// exists.
func CapabilityFilter(c *Capabilities) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return &sandboxFilter{c: c, next: next}
	}
}

type sandboxFilter struct {
	c    *Capabilities
	next http.Handler
}

// sandboxRequest is one interaction, as the filter maps a request or a
// Bundle entry.
type sandboxRequest struct {
	method, path string // as received, for messages
	typ          string // the resource type, "" at system level
	id           string // for instance-level interactions
	in           Interaction
	op           string // operation name without "$", for operations
	// The conditional form used, if any: "conditional create",
	// "conditional update", "conditional patch", "conditional delete".
	conditional string
}

func (q sandboxRequest) name() string {
	switch {
	case q.op != "" && q.typ != "":
		return "operation $" + q.op + " on " + q.typ
	case q.op != "":
		return "system operation $" + q.op
	case q.conditional != "" && q.typ != "":
		return q.conditional + " on " + q.typ
	case q.typ != "":
		return string(q.in) + " on " + q.typ
	}
	return string(q.in)
}

// refusal says why c refuses q, or "" when c declares it.
func (f *sandboxFilter) refusal(q sandboxRequest) string {
	c := f.c
	if q.op != "" {
		if !c.Operation(q.typ, q.op) {
			return "does not declare " + q.name()
		}
		return ""
	}
	if q.typ != "" && c.Resource(q.typ) == nil {
		return "does not list " + q.typ + " at all"
	}
	if !c.Allows(q.typ, q.in) {
		return "does not declare " + q.name()
	}
	r := c.Resource(q.typ)
	switch q.conditional {
	case "conditional create":
		if !r.ConditionalCreate {
			return "does not declare " + q.name() + " (conditionalCreate)"
		}
	case "conditional update", "conditional patch":
		if !r.ConditionalUpdate {
			return "does not declare " + q.name() + " (conditionalUpdate)"
		}
	case "conditional delete":
		if r.ConditionalDelete != "single" && r.ConditionalDelete != "multiple" {
			return "does not declare " + q.name() + " (conditionalDelete)"
		}
	}
	return ""
}

// classifyRequest maps a request to its interaction; ok is false for what is no
// FHIR interaction the filter judges (the API answers it).
func classifyRequest(method, path string, query url.Values, ifNoneExist string) (sandboxRequest, bool) {
	q := sandboxRequest{method: method, path: path}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	p := strings.Trim(path, "/")
	var seg []string
	if p != "" {
		seg = strings.Split(p, "/")
	}
	isOp := func(s string) bool { return len(s) > 1 && s[0] == '$' }
	if len(seg) == 0 {
		switch method {
		case http.MethodGet:
			q.in = InteractionSearchSystem
			return q, true
		}
		return q, false // POST / is a Bundle: see bundle
	}
	if !fhir.IsResourceType(seg[0]) {
		switch {
		case len(seg) == 1 && seg[0] == "_history" && method == http.MethodGet:
			q.in = InteractionHistorySystem
		case len(seg) == 1 && seg[0] == "_search" && (method == http.MethodGet || method == http.MethodPost):
			q.in = InteractionSearchSystem
		case len(seg) == 1 && isOp(seg[0]):
			q.op = seg[0][1:]
		default:
			return q, false
		}
		return q, true
	}
	q.typ = seg[0]
	conditional := len(query) > 0
	switch len(seg) {
	case 1:
		switch method {
		case http.MethodGet:
			q.in = InteractionSearchType
		case http.MethodPost:
			q.in = InteractionCreate
			if strings.TrimSpace(ifNoneExist) != "" {
				q.conditional = "conditional create"
			}
		case http.MethodPut:
			q.in, q.conditional = InteractionUpdate, "conditional update"
		case http.MethodPatch:
			q.in, q.conditional = InteractionPatch, "conditional patch"
		case http.MethodDelete:
			q.in, q.conditional = InteractionDelete, "conditional delete"
		default:
			return q, false
		}
		if (method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete) && !conditional {
			return q, false // no criteria: not an interaction, the API refuses it
		}
		return q, true
	case 2:
		switch {
		case seg[1] == "_search" && (method == http.MethodGet || method == http.MethodPost):
			q.in = InteractionSearchType
		case seg[1] == "_history" && method == http.MethodGet:
			q.in = InteractionHistoryType
		case isOp(seg[1]):
			q.op = seg[1][1:]
		default:
			q.id = seg[1]
			switch method {
			case http.MethodGet:
				q.in = InteractionRead
			case http.MethodPut:
				q.in = InteractionUpdate
			case http.MethodPatch:
				q.in = InteractionPatch
			case http.MethodDelete:
				q.in = InteractionDelete
			default:
				return q, false
			}
		}
		return q, true
	case 3:
		q.id = seg[1]
		switch {
		case isOp(seg[2]):
			q.op = seg[2][1:]
		case seg[2] == "_history" && method == http.MethodGet:
			q.in = InteractionHistoryInstance
		case fhir.IsResourceType(seg[2]) && method == http.MethodGet:
			// A compartment search is a search of the target type.
			q.typ, q.id, q.in = seg[2], "", InteractionSearchType
		default:
			return q, false
		}
		return q, true
	case 4:
		if seg[2] == "_history" && method == http.MethodGet {
			q.id, q.in = seg[1], InteractionVRead
			return q, true
		}
	}
	return q, false
}

func (f *sandboxFilter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.Trim(path, "/") == "metadata" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(f.c.Raw)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(f.c.Raw)
		}
		return
	}
	if strings.Trim(path, "/") == "" && r.Method == http.MethodPost {
		f.bundle(w, r)
		return
	}
	q, ok := classifyRequest(r.Method, path, r.URL.Query(), r.Header.Get("If-None-Exist"))
	if ok {
		if why := f.refusal(q); why != "" {
			f.refuse(w, r, why+": "+r.Method+" "+path, "")
			return
		}
		if why := f.updateCreates(r, q); why != "" {
			f.refuse(w, r, why, "")
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

// updateCreates refuses an update of a resource that does not exist where
// the statement does not declare updateCreate.
func (f *sandboxFilter) updateCreates(r *http.Request, q sandboxRequest) string {
	if q.in != InteractionUpdate || q.conditional != "" || q.id == "" || f.c.UpdateCreates(q.typ) {
		return ""
	}
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/"+q.typ+"/"+url.PathEscape(q.id), nil)
	if err != nil {
		return ""
	}
	probe.Header.Set("Accept", "application/fhir+json")
	if auth := r.Header.Get("Authorization"); auth != "" {
		probe.Header.Set("Authorization", auth) // the same caller asks
	}
	var st probeWriter
	f.next.ServeHTTP(&st, probe)
	if st.status == http.StatusNotFound || st.status == http.StatusGone {
		return "does not declare updateCreate for " + q.typ + ", and " + q.typ + "/" + q.id +
			" does not exist: an update cannot create it (PUT " + q.path + ")"
	}
	return ""
}

// probeWriter is a ResponseWriter that keeps the status and drops the body.
type probeWriter struct {
	status int
	h      http.Header
}

func (s *probeWriter) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}

func (s *probeWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *probeWriter) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

// bundle checks a POST to the base: a transaction or batch Bundle needs
// its system interaction, and each entry its own.
func (f *sandboxFilter) bundle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxSandboxBundleBytes+1))
	_ = r.Body.Close()
	if err != nil {
		f.fail(w, http.StatusBadRequest, fhir.IssueStructure, "the request body could not be read: "+err.Error(), "")
		return
	}
	if len(body) > MaxSandboxBundleBytes {
		f.fail(w, http.StatusRequestEntityTooLarge, fhir.IssueTooLong,
			fmt.Sprintf("the Bundle is larger than the sandbox reads (%d bytes)", MaxSandboxBundleBytes), "")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Request *struct {
				Method      string `json:"method"`
				URL         string `json:"url"`
				IfNoneExist string `json:"ifNoneExist"`
			} `json:"request"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" {
		f.next.ServeHTTP(w, r) // not a Bundle: the API says what is wrong
		return
	}
	var in Interaction
	switch b.Type {
	case "transaction":
		in = InteractionTransaction
	case "batch":
		in = InteractionBatch
	default:
		f.next.ServeHTTP(w, r)
		return
	}
	if !f.c.Allows("", in) {
		f.refuse(w, r, "does not declare "+string(in)+": POST / with a "+b.Type+" Bundle", "Bundle.type")
		return
	}
	for i, e := range b.Entry {
		if e.Request == nil {
			continue
		}
		u, err := url.Parse(e.Request.URL)
		if err != nil {
			continue
		}
		method := strings.ToUpper(e.Request.Method)
		q, ok := classifyRequest(method, u.Path, u.Query(), e.Request.IfNoneExist)
		if !ok {
			continue
		}
		where := fmt.Sprintf("Bundle.entry[%d].request", i)
		if why := f.refusal(q); why != "" {
			f.refuse(w, r, fmt.Sprintf("%s: %s %s in entry %d of the %s", why, method, e.Request.URL, i, b.Type), where)
			return
		}
		if why := f.updateCreates(r, q); why != "" {
			f.refuse(w, r, fmt.Sprintf("%s, in entry %d of the %s", why, i, b.Type), where)
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

// refuse answers 405: the statement does not declare the interaction.
func (f *sandboxFilter) refuse(w http.ResponseWriter, r *http.Request, why, expression string) {
	if expression == "" {
		if allow := f.allowed(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
		}
	}
	f.fail(w, http.StatusMethodNotAllowed, fhir.IssueNotSupported,
		"this sandbox plays "+f.c.Name+": its CapabilityStatement "+why+"; the EHR would refuse it too", expression)
}

// allowed lists the methods the statement declares on a path, for the
// Allow header of a 405.
func (f *sandboxFilter) allowed(path string) string {
	var ms []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		q, ok := classifyRequest(m, path, nil, "")
		if !ok || f.refusal(q) != "" {
			continue
		}
		ms = append(ms, m)
		if m == http.MethodGet {
			ms = append(ms, http.MethodHead)
		}
	}
	return strings.Join(ms, ", ")
}

func (f *sandboxFilter) fail(w http.ResponseWriter, status int, code fhir.IssueType, msg, expression string) {
	is := fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: msg}
	if expression != "" {
		is.Expression = []string{expression}
	}
	body := fhir.OperationOutcome([]fhir.Issue{is})
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
