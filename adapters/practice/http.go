package practice

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// The practice ingestion API: plain JSON over HTTP for practice systems
// that can call a webhook. It is not FHIR, so its errors are not
// OperationOutcomes but one JSON shape of its own:
//
//	{"error": {"code": "...", "message": "...", "details": [...]}}
//
// It is a server.API: the FHIR API's Gin engine serves it under
// /practice, behind the same middleware (request id, access log, panic
// recovery, admission, the time limit), and asks it (Fail) to answer in
// this shape what that middleware refuses on its paths.

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
	// Logger gets the API's failures (ids, never bodies: records are PHI;
	// the access log is the server's); nil means slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds each request (the server's time-limit
	// middleware applies it: API.Limits); 0 means DefaultRequestTimeout.
	// Past it the records not yet applied are not applied, and the answer
	// is 503 timeout (records before that point are stored; a retry is
	// safe).
	RequestTimeout time.Duration
	// ForTenant makes the Applier of another practice (tenant) than
	// Applier's, for that practice's authenticated clients
	// (server.PrincipalOf): each practice writes and reads its own records
	// and resources, in its own namespace. Called once per practice. Nil:
	// clients of other practices are refused (403).
	ForTenant func(tenant string) *records.Applier
}

// API is the practice ingestion API, a server.API: give it to
// server.Config.APIs.
type API struct {
	applier *records.Applier
	maxBody int64
	wait    time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	schema  []byte
	keys    *keyLocks

	forTenant func(string) *records.Applier
	tenantsMu sync.Mutex
	tenants   map[string]*records.Applier
}

// NewAPI returns the practice ingestion API. It panics if the Applier's
// store does not keep practice records: that is a wiring mistake, found
// at start rather than on the first request.
func NewAPI(cfg HTTPConfig) *API {
	a := &API{applier: cfg.Applier, maxBody: cfg.MaxBodyBytes, wait: cfg.IdempotencyWait, now: cfg.Now, log: cfg.Logger,
		schema: mappings.Schema(), keys: newKeyLocks(), forTenant: cfg.ForTenant, tenants: map[string]*records.Applier{}}
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
	return a
}

// applierOf is the Applier of the practice c's client belongs to: the
// configured one without authorization or for its own practice's clients,
// ForTenant's for another practice's.
func (a *API) applierOf(c *gin.Context) (*records.Applier, *apiError) {
	p := server.PrincipalOf(c)
	if p == nil || p.Tenant == "" || p.Tenant == tenantName(a.applier) {
		return a.applier, nil
	}
	if a.forTenant == nil {
		return nil, &apiError{Code: codeForbidden, Message: "client " + p.ClientID + " belongs to another practice than the one this practice API serves"}
	}
	a.tenantsMu.Lock()
	defer a.tenantsMu.Unlock()
	ap, ok := a.tenants[p.Tenant]
	if !ok {
		ap = a.forTenant(p.Tenant)
		if ap == nil || ap.Store == nil {
			return nil, &apiError{Code: codeForbidden, Message: "client " + p.ClientID + " belongs to a practice this practice API does not serve"}
		}
		if err := ap.Check(); err != nil {
			return nil, &apiError{Code: codeInternal, Message: "the practice's records cannot be kept: " + err.Error()}
		}
		a.tenants[p.Tenant] = ap
	}
	return ap, nil
}

// Route paths: the API's prefix (server.API), and its routes under it.
const (
	prefix       = "/practice"
	routeRecords = "/v1/records"
	routeSchema  = "/v1/schema"

	pathRecords = prefix + routeRecords
	pathSchema  = prefix + routeSchema
)

// getOrHead are the methods of a GET route: net/http drops the body of a
// HEAD answer.
var getOrHead = []string{http.MethodGet, http.MethodHead}

// Prefix is where the API lives: the paths under /practice/ (server.API).
func (a *API) Prefix() string { return prefix }

// Register adds the routes, the whole practice API in one table, to g, the
// group at Prefix (server.API). A GET route answers HEAD too.
func (a *API) Register(g *gin.RouterGroup) {
	g.POST(routeRecords, a.postRecords)
	g.Match(getOrHead, routeRecords, a.listRecords)
	g.Match(getOrHead, routeRecords+"/:kind/:id", a.getRecord)
	g.Match(getOrHead, routeSchema, a.getSchema)
}

// Limits are the API's own bounds, which the server's middleware applies
// (server.API): the body limit (413 before a body declared larger is
// read; readBody bounds what is read) and the time limit.
func (a *API) Limits() server.APILimits {
	return server.APILimits{MaxBodyBytes: a.maxBody, RequestTimeout: a.timeout}
}

// Fail answers, in the API's JSON error shape, what the server's router
// and middleware refuse on the API's paths (server.API).
func (a *API) Fail(c *gin.Context, f server.Failure) {
	var e *apiError
	p := c.Request.URL.Path
	switch f.Kind {
	case server.FailNoRoute:
		e = &apiError{Code: codeNotFound, Message: "no practice API endpoint at " + p +
			" (POST " + pathRecords + ", GET " + pathRecords + "?state=pending, GET " + pathRecords + "/{kind}/{id}, GET " + pathSchema + ")"}
	case server.FailNoMethod:
		allow := c.Writer.Header().Get("Allow") // the methods of the routes at p
		e = &apiError{Code: codeMethodNotAllowed, Message: "method " + c.Request.Method + " is not allowed at " + p + " (allowed: " + allow + ")"}
	case server.FailBodyTooLarge:
		e = a.tooLarge()
	case server.FailTimeout:
		a.log.WarnContext(c.Request.Context(), "practice request stopped", "request_id", server.RequestID(c), "error", f.Cause)
		e = a.timedOut()
	case server.FailBusy:
		e = &apiError{Code: codeBusy, Message: f.Message}
	default:
		e = &apiError{Code: codeInternal, Message: f.Message}
	}
	writeError(c.Writer, e)
}

// getSchema serves the practice record JSON Schema, the contract of
// POST /practice/v1/records.
func (a *API) getSchema(c *gin.Context) {
	w := c.Writer
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
	codeForbidden          = "forbidden"
	codeMethodNotAllowed   = "method_not_allowed"
	codeBadIdempotencyKey  = "invalid_idempotency_key"
	codeIdempotencyReused  = "idempotency_key_reused"
	codeIdempotencyPending = "idempotency_key_in_use"
	codeStorage            = "storage_failure"
	codeTimeout            = "timeout"
	codeBusy               = "server_busy"
	codeInternal           = "internal_error"
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
	codeForbidden:          http.StatusForbidden,
	codeMethodNotAllowed:   http.StatusMethodNotAllowed,
	codeIdempotencyReused:  http.StatusUnprocessableEntity,
	codeIdempotencyPending: http.StatusConflict,
	codeStorage:            http.StatusInternalServerError,
	codeTimeout:            http.StatusServiceUnavailable,
	codeBusy:               http.StatusServiceUnavailable,
	codeInternal:           http.StatusInternalServerError,
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

// tenantName is the practice (tenant) ap writes.
func tenantName(ap *records.Applier) string {
	if ap.Tenant == "" {
		return fhir.DefaultTenant
	}
	return ap.Tenant
}
