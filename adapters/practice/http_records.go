package practice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// Media types POST /practice/v1/records accepts.
const (
	mimeJSON   = "application/json"
	mimeNDJSON = "application/x-ndjson"
)

// RecordResult is the answer for one record of a request: where it was
// (Index, 0-based, and the 1-based Line where it starts) and what became
// of it. For a record that does not decode, Problems list its problems
// with the JSON path of each field at fault; they are in Errors too, as
// text.
type RecordResult struct {
	Index int `json:"index"`
	Line  int `json:"line"`
	Result
	Problems []Problem `json:"problems,omitempty"`
}

// Result is a records.Result as the practice API answers it: its problems
// as text (mappings.Problem.String), errors and warnings apart.
type Result struct {
	Kind      mappings.Kind         `json:"kind"`
	ID        string                `json:"id"`
	Status    string                `json:"status"`
	Resources []records.ResourceRef `json:"resources,omitempty"`
	Warnings  []string              `json:"warnings,omitempty"`
	Errors    []string              `json:"errors,omitempty"`
	Pending   []string              `json:"pending,omitempty"`
	// Findings are Warnings and Errors one by one: the code (CHECKS.md),
	// its severity (an alert is a rule broken by something that happened:
	// the record is kept and flagged), the field and the message.
	Findings []Finding `json:"findings,omitempty"`
	Related  []Result  `json:"related,omitempty"`
}

// Finding is one problem of a record, as the practice API names it.
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"`
	// Flag says the finding reaches the prescriber's EHR as a Flag of
	// this priority (PH, PM, PL; mappings.FindingFlag).
	Flag string `json:"flag,omitempty"`
}

func findingsOf(ps ...[]mappings.Problem) []Finding {
	var out []Finding
	for _, list := range ps {
		for _, p := range list {
			f := Finding{Code: p.Code, Severity: p.Severity, Field: p.Field, Message: p.Message}
			if pr, ok := mappings.FindingFlag(p); ok {
				f.Flag = pr
			}
			out = append(out, f)
		}
	}
	return out
}

// resultOf renders a records.Result, and the results it carries, as the
// API's JSON.
func resultOf(r records.Result) Result {
	out := Result{Kind: r.Kind, ID: r.ID, Status: r.Status, Resources: r.Resources, Pending: r.Pending,
		Warnings: mappings.Texts(r.Warnings), Errors: mappings.Texts(r.Errors), Findings: findingsOf(r.Errors, r.Warnings)}
	for _, rel := range r.Related {
		out.Related = append(out.Related, resultOf(rel))
	}
	return out
}

// Problem is a mappings.Problem of a record that does not decode, as the
// practice API lists it: the field at fault and the message.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Summary counts the records of a request by outcome.
type Summary struct {
	Records   int `json:"records"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Pending   int `json:"pending"`
	Rejected  int `json:"rejected"`
	Warnings  int `json:"warnings"`
}

// IngestResponse is the body of a POST /practice/v1/records answer.
type IngestResponse struct {
	Results []RecordResult `json:"results"`
	Summary Summary        `json:"summary"`
}

// postRecords handles POST /practice/v1/records. The status is 200 when
// every record was accepted (created, updated, unchanged or pending: a
// pending record is stored and maps once what it names arrives), 207 when
// any was rejected; the body carries a result per record either way, so a
// bad record never hides the good ones.
func (a *API) postRecords(c *gin.Context) {
	w, r := c.Writer, c.Request
	mt, merr := requestMediaType(r.Header.Get("Content-Type"))
	if merr != nil {
		writeError(w, merr)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if _, sent := r.Header["Idempotency-Key"]; sent && !isToken(key, 255) {
		writeError(w, &apiError{Code: codeBadIdempotencyKey, Message: "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"})
		return
	}
	ap, aerr := a.applierOf(c)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	body, aerr := a.readBody(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx := r.Context()
	var status int
	var resp []byte
	var err error
	if key == "" {
		status, resp, err = a.ingest(ctx, ap, mt, body)
	} else {
		var replayed bool
		status, resp, replayed, err = a.idempotent(ctx, ap, key, body, func() (int, []byte, error) { return a.ingest(ctx, ap, mt, body) })
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
	}
	if err != nil {
		var ae *apiError
		if ctx.Err() != nil && !errors.As(err, &ae) {
			a.log.WarnContext(ctx, "practice ingestion stopped", "request_id", w.Header().Get("X-Request-Id"), "error", err)
			ae = a.timedOut()
		} else if !errors.As(err, &ae) {
			a.log.ErrorContext(ctx, "practice ingestion failed", "request_id", w.Header().Get("X-Request-Id"), "error", err)
			ae = &apiError{Code: codeStorage, Message: "the store failed; records before the failure may be written. Retrying the request is safe: a record applied twice is unchanged (request id " + w.Header().Get("X-Request-Id") + ")"}
		}
		writeError(w, ae)
		return
	}
	writeJSON(w, status, resp)
}

// requestMediaType checks the Content-Type: JSON (one record or an
// array) or NDJSON (one record per line).
func requestMediaType(ct string) (string, *apiError) {
	unsupported := &apiError{Code: codeUnsupportedMedia,
		Message: fmt.Sprintf("Content-Type %q is not accepted: send %s (one record or an array of records) or %s (one record per line)", ct, mimeJSON, mimeNDJSON),
		Details: []any{mimeJSON, mimeNDJSON}}
	if ct == "" {
		return "", unsupported
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		unsupported.Message = fmt.Sprintf("charset %q is not accepted: records are UTF-8", cs)
		return "", unsupported
	}
	switch mt {
	case mimeJSON, mimeNDJSON:
		return mt, nil
	}
	return "", unsupported
}

// timedOut is the answer to a request stopped at its time limit, or
// whose client went away: 503, because unlike a costly FHIR search, a
// retry makes progress (the records applied already come back unchanged).
func (a *API) timedOut() *apiError {
	return &apiError{Code: codeTimeout, Message: "the request ran past its time limit of " + a.timeout.String() +
		" (or its client went away) and was stopped; records before that point may be written. Retrying the request is safe: a record applied twice is unchanged. Send fewer records per request"}
}

// tooLarge is the answer to a body over MaxBodyBytes, declared (the
// server's admission refuses it before it is read: Fail) or read.
func (a *API) tooLarge() *apiError {
	return &apiError{Code: codeTooLarge, Message: fmt.Sprintf("the body exceeds %d bytes: split the records over several requests, or use kapbridge import for files", a.maxBody)}
}

// readBody reads the whole body, bounded: the idempotency fingerprint and
// the all-or-nothing framing check both need it before any write.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if r.ContentLength > a.maxBody {
		return nil, a.tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, a.tooLarge()
		}
		return nil, &apiError{Code: codeBadRequest, Message: "reading the body: " + err.Error()}
	}
	if len(bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))) == 0 {
		return nil, &apiError{Code: codeEmptyBody, Message: "the body is empty: send one record, an array of records, or NDJSON"}
	}
	return body, nil
}

// ingest decodes the whole body first, so a body that is not JSON at all
// writes nothing (400), then applies the records in order, each in its
// own store transaction. It returns an *apiError for the caller's
// mistakes and any other error for a storage failure.
func (a *API) ingest(ctx context.Context, ap *records.Applier, mediaType string, body []byte) (int, []byte, error) {
	recs, aerr := decodeBody(mediaType, body)
	if aerr != nil {
		return aerr.status(), errorBody(aerr), nil
	}
	out := IngestResponse{Results: make([]RecordResult, 0, len(recs))}
	for i, d := range recs {
		rr := RecordResult{Index: i, Line: d.Line}
		if d.Err != nil {
			rr.Kind, rr.ID, rr.Status = d.Err.Record.Kind, d.Err.Record.ID, records.StatusRejected
			rr.Errors = mappings.Texts(d.Err.Problems)
			for _, p := range d.Err.Problems {
				rr.Problems = append(rr.Problems, Problem{Field: p.Field, Message: p.Message})
			}
		} else {
			res, err := ap.Apply(ctx, d.Record)
			if err != nil {
				h := d.Record.RecordHeader()
				return 0, nil, fmt.Errorf("record %d (%s %q): %w", i, h.Kind, h.ID, err)
			}
			rr.Result = resultOf(res)
		}
		out.Summary.add(rr.Result)
		out.Results = append(out.Results, rr)
	}
	status := http.StatusOK
	if out.Summary.Rejected > 0 {
		status = http.StatusMultiStatus
	}
	return status, marshal(out), nil
}

func (s *Summary) add(r Result) {
	s.Records++
	s.Warnings += len(r.Warnings)
	switch r.Status {
	case records.StatusCreated:
		s.Created++
	case records.StatusUpdated:
		s.Updated++
	case records.StatusUnchanged:
		s.Unchanged++
	case records.StatusPending:
		s.Pending++
	default:
		s.Rejected++
	}
}

// decodeBody splits a body into records with Read, the reader of
// `kapbridge import`, so a record is read, checked and numbered the same
// way whichever way it arrives. JSON must be one valid JSON value (an
// object or an array of objects), checked whole first, so a broken
// document writes nothing; NDJSON is one record per line, each line on
// its own, so a broken line rejects only itself.
func decodeBody(mediaType string, body []byte) ([]Item, *apiError) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	format := FormatNDJSON
	if mediaType != mimeNDJSON {
		if err := validJSON(body); err != nil {
			return nil, err
		}
		trimmed := bytes.TrimSpace(body)
		if trimmed[0] != '{' && trimmed[0] != '[' {
			return nil, &apiError{Code: codeInvalidJSON, Message: "the body must be a record (a JSON object) or an array of records"}
		}
		format = FormatJSON
	}
	var recs []Item
	// Read fails only with fn's error (none here) or the reader's (none
	// from memory).
	_ = Read(bytes.NewReader(body), format, ReadOptions{}, func(it Item) error {
		recs = append(recs, it)
		return nil
	})
	if len(recs) == 0 {
		return nil, &apiError{Code: codeNoRecords, Message: "the body holds no records"}
	}
	return recs, nil
}

// validJSON reports a syntax error with its line and column, since a
// practice developer will look for it in an editor.
func validJSON(body []byte) *apiError {
	var v json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			return &apiError{Code: codeInvalidJSON, Message: fmt.Sprintf("data after the JSON value at %s: send one record or one array (or use %s for one record per line)", position(body, dec.InputOffset()), mimeNDJSON)}
		}
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &apiError{Code: codeInvalidJSON, Message: fmt.Sprintf("invalid JSON at %s: %v; nothing was written", position(body, se.Offset), err)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &apiError{Code: codeInvalidJSON, Message: "invalid JSON: the body ends in the middle of a value (truncated?); nothing was written"}
	}
	return &apiError{Code: codeInvalidJSON, Message: "invalid JSON: " + err.Error() + "; nothing was written"}
}

// position names a byte offset as "line L, column C".
func position(body []byte, off int64) string {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return "line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col)
}

// RecordView is a record as the gateway holds it: GET
// /practice/v1/records/{kind}/{id}.
type RecordView struct {
	Kind  mappings.Kind `json:"kind"`
	ID    string        `json:"id"`
	State string        `json:"state"` // mapped, pending, rejected
	// Pending lists the "kind/id" references the record waits for.
	Pending []string `json:"pending,omitempty"`
	// Reasons say why a waiting record was rejected once its references
	// arrived.
	Reasons   []string              `json:"reasons,omitempty"`
	Updated   time.Time             `json:"updated"`
	Record    json.RawMessage       `json:"record"`
	Resources []records.ResourceRef `json:"resources"`
	// Withheld names record fields not served over HTTP (a process note's
	// text), with why.
	Withheld string `json:"withheld,omitempty"`
}

// getRecord handles GET /practice/v1/records/{kind}/{id}.
func (a *API) getRecord(c *gin.Context) {
	w, r := c.Writer, c.Request
	kind, id := mappings.Kind(c.Param("kind")), c.Param("id")
	if !knownKind(kind) {
		writeError(w, &apiError{Code: codeNotFound, Message: fmt.Sprintf("unknown record kind %q", kind), Details: kindNames()})
		return
	}
	ap, aerr := a.applierOf(c)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	row, ok, err := ap.Record(r.Context(), kind, id)
	if err != nil {
		a.log.ErrorContext(r.Context(), "practice record read failed", "request_id", w.Header().Get("X-Request-Id"), "error", err)
		writeError(w, &apiError{Code: codeStorage, Message: "the store failed (request id " + w.Header().Get("X-Request-Id") + ")"})
		return
	}
	if !ok {
		writeError(w, &apiError{Code: codeNotFound, Message: fmt.Sprintf("no %s record %q", kind, id)})
		return
	}
	v := RecordView{Kind: mappings.Kind(row.Kind), ID: row.ID, State: row.State, Pending: row.Pending, Reasons: row.Reasons,
		Updated: row.Updated.UTC(), Record: json.RawMessage(row.Body), Resources: make([]records.ResourceRef, 0, len(row.Resources))}
	for _, s := range row.Resources {
		if ref, err := records.ParseResourceRef(s); err == nil {
			v.Resources = append(v.Resources, ref)
		}
	}
	if kind == mappings.KindNote {
		// A process note is a psychotherapy note. This API does not yet
		// authenticate its callers (roadmap item 2), so it cannot tell the
		// practice from anyone else who reaches it: the text stays in the
		// store, and `kapbridge export` (run by the practice, on the
		// store) gives it back.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(row.Body, &m); err == nil {
			delete(m, "text")
			v.Record = marshal(m)
		} else {
			v.Record = json.RawMessage(`{}`)
		}
		v.Withheld = "text: a process note's text is not served over HTTP until the practice API authenticates its callers; use kapbridge export"
	}
	writeJSON(w, http.StatusOK, marshal(v))
}

func knownKind(k mappings.Kind) bool {
	for _, x := range mappings.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

func kindNames() []any {
	out := make([]any, len(mappings.Kinds))
	for i, k := range mappings.Kinds {
		out[i] = string(k)
	}
	return out
}

// PendingList is the body of GET /practice/v1/records?state=pending: the
// records waiting for others, oldest first, with their age, and how many
// are safety-relevant and overdue (each of those has raised a Flag, on its
// patient or, where that is not known yet, on the practice:
// records.Applier.FlagOverdue).
type PendingList struct {
	State      string                  `json:"state"`
	Count      int                     `json:"count"`
	Overdue    int                     `json:"overdue"`
	MaxPending string                  `json:"max_pending"`
	Records    []records.PendingRecord `json:"records"`
}

// listRecords handles GET /practice/v1/records?state=pending.
func (a *API) listRecords(c *gin.Context) {
	w, r := c.Writer, c.Request
	state := r.URL.Query().Get("state")
	if state != "pending" {
		writeError(w, &apiError{Code: codeBadRequest, Message: fmt.Sprintf("state=%q: the records listing takes state=pending (a record by kind and id is at %s/{kind}/{id})", state, pathRecords)})
		return
	}
	ap, aerr := a.applierOf(c)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	max := ap.Checks.Limits.PendingMax()
	list, err := ap.PendingRecords(r.Context(), a.now(), max)
	if err != nil {
		a.log.ErrorContext(r.Context(), "practice pending listing failed", "request_id", w.Header().Get("X-Request-Id"), "error", err)
		writeError(w, &apiError{Code: codeStorage, Message: "the store failed (request id " + w.Header().Get("X-Request-Id") + ")"})
		return
	}
	out := PendingList{State: state, Count: len(list), MaxPending: max.String(), Records: list}
	for _, p := range list {
		if p.Overdue {
			out.Overdue++
		}
	}
	writeJSON(w, http.StatusOK, marshal(out))
}
