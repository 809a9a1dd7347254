package practice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// The practice ingestion API: plain JSON over HTTP for practice systems
// that can call a webhook. It is not FHIR, so its errors are not
// OperationOutcomes but one JSON shape of its own:
//
//	{"error": {"code": "...", "message": "...", "details": [...]}}
//
// It uses net/http's ServeMux rather than Gin: three routes need no
// framework, and the request body is read here, by hand, anyway (the
// idempotency fingerprint needs its bytes).

// DefaultMaxBodyBytes bounds an ingestion request: about 10,000
// observation records, far more than a webhook batch; bulk loads use
// `kapbridge import`, which streams.
const DefaultMaxBodyBytes = 10 << 20

// DefaultIdempotencyWait is how long a request waits for a concurrent
// request with the same Idempotency-Key to finish before it gets 409.
const DefaultIdempotencyWait = 30 * time.Second

// DefaultRequestTimeout bounds one request of the practice API when
// HTTPConfig.RequestTimeout is zero. Far longer than the FHIR API's 30 s:
// a request's work is bounded already by its body (DefaultMaxBodyBytes,
// about 10,000 records, each a few key lookups and one small
// transaction), and at the rate measured on SQLite (a few hundred records
// a second) the largest body needs about a minute. The limit is for a
// store that stops answering, not for a costly request.
const DefaultRequestTimeout = 5 * time.Minute

// HTTPConfig configures the practice ingestion API. Every field but
// Applier has a documented default.
type HTTPConfig struct {
	// Applier maps and stores the records. Required; its Store must keep
	// practice records (records.Applier.Check; both sqlstore backends do).
	Applier *records.Applier
	// MaxBodyBytes bounds a request body (413 beyond); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// IdempotencyWait is how long a duplicate waits for the request
	// holding its key; 0 means DefaultIdempotencyWait.
	IdempotencyWait time.Duration
	// Now is the clock of idempotency expiry; nil means time.Now.
	Now func() time.Time
	// Logger gets one line per request (ids and status, never bodies:
	// records are PHI); nil means slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds each request; 0 means DefaultRequestTimeout.
	// Past it the records not yet applied are not applied, and the answer
	// is 503 timeout (records before that point are stored; a retry is
	// safe).
	RequestTimeout time.Duration
}

// API serves the practice ingestion API under /practice/.
type API struct {
	applier *records.Applier
	maxBody int64
	wait    time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	schema  []byte
	keys    *keyLocks
	mux     *http.ServeMux
}

// NewAPI returns the practice ingestion API. It panics if the Applier's
// store does not keep practice records: that is a wiring mistake, found
// at start rather than on the first request.
func NewAPI(cfg HTTPConfig) *API {
	a := &API{applier: cfg.Applier, maxBody: cfg.MaxBodyBytes, wait: cfg.IdempotencyWait, now: cfg.Now, log: cfg.Logger,
		schema: mappings.Schema(), keys: newKeyLocks()}
	if a.applier == nil || a.applier.Store == nil {
		panic("practice: HTTPConfig.Applier with a Store is required")
	}
	if err := a.applier.Check(); err != nil {
		panic("practice: " + err.Error())
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.wait <= 0 {
		a.wait = DefaultIdempotencyWait
	}
	if a.timeout = cfg.RequestTimeout; a.timeout <= 0 {
		a.timeout = DefaultRequestTimeout
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.mux = a.routes()
	return a
}

// Route paths.
const (
	pathRecords = "/practice/v1/records"
	pathSchema  = "/practice/v1/schema"
)

// routes is the whole practice API in one table.
func (a *API) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST "+pathRecords, a.postRecords)
	m.HandleFunc("GET "+pathRecords+"/{kind}/{id}", a.getRecord)
	m.HandleFunc("GET "+pathSchema, a.getSchema)
	// ServeMux's own 404 and 405 are text/plain; this catch-all keeps
	// every answer in the API's JSON error shape.
	m.HandleFunc("/practice/", a.noRoute)
	return m
}

// ServeHTTP gives every request an id (echoed as X-Request-Id, so a
// practice can quote it) and logs one line per request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !isToken(id, 64) {
		id = newRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	// The request's store calls stop when its time is up (or its client
	// goes away: net/http cancels r's context then).
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	a.mux.ServeHTTP(sw, r.WithContext(ctx))
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "practice request",
		slog.String("request_id", id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.status),
		slog.Duration("duration", time.Since(start)))
}

func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	allow := ""
	switch {
	case p == pathRecords:
		allow = "POST"
	case p == pathSchema || isRecordPath(p):
		allow = "GET, HEAD"
	}
	if allow != "" {
		w.Header().Set("Allow", allow)
		writeError(w, &apiError{Code: codeMethodNotAllowed, Message: "method " + r.Method + " is not allowed at " + p + " (allowed: " + allow + ")"})
		return
	}
	writeError(w, &apiError{Code: codeNotFound, Message: "no practice API endpoint at " + p +
		" (POST " + pathRecords + ", GET " + pathRecords + "/{kind}/{id}, GET " + pathSchema + ")"})
}

func isRecordPath(p string) bool {
	rest, ok := strings.CutPrefix(p, pathRecords+"/")
	if !ok {
		return false
	}
	kind, id, ok := strings.Cut(rest, "/")
	return ok && kind != "" && id != "" && !strings.Contains(id, "/")
}

// getSchema serves the practice record JSON Schema, the contract of
// POST /practice/v1/records.
func (a *API) getSchema(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/schema+json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(a.schema)
}

// ---- errors ----

// Error codes of the practice API.
const (
	codeBadRequest         = "bad_request"
	codeEmptyBody          = "empty_body"
	codeInvalidJSON        = "invalid_json"
	codeNoRecords          = "no_records"
	codeUnsupportedMedia   = "unsupported_media_type"
	codeTooLarge           = "payload_too_large"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeBadIdempotencyKey  = "invalid_idempotency_key"
	codeIdempotencyReused  = "idempotency_key_reused"
	codeIdempotencyPending = "idempotency_key_in_use"
	codeStorage            = "storage_failure"
	codeTimeout            = "timeout"
)

// codeStatus is the one table from error code to HTTP status.
var codeStatus = map[string]int{
	codeBadRequest:         http.StatusBadRequest,
	codeEmptyBody:          http.StatusBadRequest,
	codeInvalidJSON:        http.StatusBadRequest,
	codeNoRecords:          http.StatusBadRequest,
	codeBadIdempotencyKey:  http.StatusBadRequest,
	codeUnsupportedMedia:   http.StatusUnsupportedMediaType,
	codeTooLarge:           http.StatusRequestEntityTooLarge,
	codeNotFound:           http.StatusNotFound,
	codeMethodNotAllowed:   http.StatusMethodNotAllowed,
	codeIdempotencyReused:  http.StatusUnprocessableEntity,
	codeIdempotencyPending: http.StatusConflict,
	codeStorage:            http.StatusInternalServerError,
	codeTimeout:            http.StatusServiceUnavailable,
}

// apiError is the API's one error type. Message is for the practice's
// developers; the cause of a storage failure goes to the log only.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func (e *apiError) status() int {
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody encodes e in the API's error shape.
func errorBody(e *apiError) []byte {
	b, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	return append(b, '\n')
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status(), errorBody(e))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshal encodes v as the API's JSON: compact, one trailing newline,
// and no HTML escaping (record text may hold < and &, which practices
// should get back as sent).
func marshal(v any) []byte {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every value encoded here is plain data; failing is a bug.
		panic("practice: encode response: " + err.Error())
	}
	return []byte(b.String())
}

// ---- small helpers ----

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (and MaxBytesReader's connection
// close) reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isToken reports whether s is 1..max printable ASCII characters without
// spaces: safe to echo in a header and to log.
func isToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
