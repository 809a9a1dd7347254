// Package server is kapbridge's FHIR R4 REST API: the route table
// (routes.go), one file per interaction, each a plain function of a
// Request to a Response or an OperationOutcome error (handler.go) that Gin
// serves over HTTP behind the middleware every request goes through, and
// that Server.Do runs in the process (batch and transaction GET entries);
// and the CapabilityStatement that describes exactly what is implemented.
// Other APIs (the practice API) are served beside it by the same Gin
// engine, behind the same middleware, each answering in its own format
// (Config.APIs, apis.go).
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Config configures a Server. The zero value of every field but Store has
// a documented default.
type Config struct {
	// Store holds the resources. Required, and it must search: implement
	// search.Store (search, paged history, and transactions that search
	// their own view), as every backend of the project does; New panics
	// otherwise, since such a server could not serve the interactions its
	// CapabilityStatement declares.
	Store fhir.Store
	// BaseURL is the public base URL of the FHIR API, used for Location
	// headers and fullUrl; default "http://127.0.0.1:8080".
	BaseURL string
	// Logger receives one line per request (ids only, never bodies);
	// default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewID makes a new logical id; default a random UUID.
	NewID func() string
	// Version is the software version shown in the CapabilityStatement.
	Version string
	// Conformance holds the server's own conformance resources as FHIR
	// JSON (profiles, CodeSystems, ValueSets, Questionnaires): stored and
	// served read-only, their profiles enforced on writes that claim them
	// (conformance.go). Nil: none.
	Conformance [][]byte
	// Profiles are the profiles, ValueSets and CodeSystems every write is
	// checked against beyond the base R4 definitions: a resource claiming
	// one of the profiles in meta.profile must meet it (422 otherwise), and
	// an extension whose url is one of its extension definitions must
	// meet that. The server adds the profiles and terminology of
	// Conformance to them. Nil: only those of Conformance.
	Profiles *fhir.Profiles
	// Documents are served read-only beside the FHIR API at their Path
	// (e.g. the practice record JSON Schema); the server knows nothing
	// of their content.
	Documents []Document
	// Limits bound requests and how many are served at once; the zero
	// value is DefaultLimits (limits.go).
	Limits Limits
	// RequestTimeout bounds each request (deadline.go); zero means
	// DefaultRequestTimeout (30 s). A request past it is stopped, its
	// store queries cancelled, and answered 403 too-costly.
	RequestTimeout time.Duration
	// APIs are served beside the FHIR API, each under its prefix, by the
	// same router and behind the same middleware (request id, access log,
	// panic recovery, admission under Limits, the time limit), each
	// answering in its own format (apis.go). Nil: the FHIR API alone.
	APIs []API
	// Changed runs inside the transaction of every version this server
	// writes (write.Writer.Changed): EHR sync's enqueue hook. Nil: none.
	Changed func(ctx context.Context, tx fhir.Tx, v fhir.Version) error
	// Auth, when set, requires a bearer token and checks its scopes and
	// practice on every request but the public ones (auth.go). Nil: no
	// authorization (dev mode).
	Auth *Auth
}

// Document is a static document served at a fixed path.
type Document struct {
	Path        string // e.g. "/schema/practice-record.schema.json"
	ContentType string
	Body        []byte
}

// Server serves the FHIR REST API.
type Server struct {
	store   search.Store
	base    string
	log     *slog.Logger
	now     func() time.Time
	changed func(ctx context.Context, tx fhir.Tx, v fhir.Version) error
	newID   func() string
	version string
	table   []route // routes.go
	engine  *gin.Engine
	started time.Time

	capOnce sync.Once
	capJSON []byte

	conf     *conformance   // nil without Config.Conformance
	profiles *fhir.Profiles // Config.Profiles with Conformance's
	docs     []Document

	lim       Limits // with defaults
	admission *admission
	timeout   time.Duration // Config.RequestTimeout, defaulted

	fhir     API   // the FHIR API as the engine serves it (fhirAPI)
	apis     []API // Config.APIs
	patterns map[API][]routePattern
	methods  []string // of all routes, in the order of Gin's trees

	auth    *Auth       // Config.Auth (auth.go)
	limiter rateLimiter // per client (auth_hardening.go)
}

// New returns the FHIR API, and the APIs of cfg.APIs beside it, as an
// http.Handler. It panics when cfg.Store is nil or does not implement
// search.Store, or an API's prefix is not a path ("/name", no trailing
// slash): wiring mistakes, reported once here rather than as a 501 on
// every search or a route that never matches.
func New(cfg Config) *Server {
	st, ok := cfg.Store.(search.Store)
	if !ok {
		panic(fmt.Sprintf("server.New: Config.Store (%T) does not implement search.Store: the FHIR API needs a store that searches, pages history and searches inside its transactions", cfg.Store))
	}
	for _, a := range cfg.APIs {
		if p := a.Prefix(); len(p) < 2 || p[0] != '/' || strings.HasSuffix(p, "/") || hasDotOrEmptySegment(p) {
			panic(fmt.Sprintf("server.New: the prefix %q of an API (%T) is not a path such as /practice", p, a))
		}
	}
	s := &Server{store: st, base: strings.TrimRight(cfg.BaseURL, "/"), log: cfg.Logger,
		now: cfg.Now, changed: cfg.Changed, newID: cfg.NewID, version: cfg.Version}
	if s.base == "" {
		s.base = "http://127.0.0.1:8080"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = NewUUID
	}
	if s.version == "" {
		s.version = "dev"
	}
	s.timeout = cfg.RequestTimeout
	if s.timeout <= 0 {
		s.timeout = DefaultRequestTimeout
	}
	s.started = s.now().UTC()
	s.conf, s.profiles = newConformance(cfg.Conformance, cfg.Profiles, s.log)
	s.docs = cfg.Documents
	s.lim = cfg.Limits.WithDefaults()
	s.admission = newAdmission(s.lim)
	s.table = s.routeTable()
	s.auth = cfg.Auth
	s.fhir, s.apis = fhirAPI{s}, append(cfg.APIs, authAPIs(cfg.Auth)...)
	s.engine = s.routes()
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// NewUUID returns a random (version 4) UUID, a valid FHIR id.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// tenantOf returns the tenant of a request: its client's practice
// (auth.go), or the default tenant without authorization.
func tenantOf(c *gin.Context) string {
	if t := principalTenant(c); t != "" {
		return t
	}
	return fhir.DefaultTenant
}

// ---- responses ----

const (
	mimeFHIRJSON = "application/fhir+json"
	mimeJSON     = "application/json"
)

// writeJSON writes body with the negotiated JSON content type, indented
// when _pretty=true. An answer of the shared middleware, before the FHIR
// group negotiated, takes the type _format or Accept asks for, if it is
// one the API produces.
func writeJSON(c *gin.Context, status int, body []byte) {
	ct := mimeFHIRJSON
	if v, ok := c.Get(ctxFormat); ok {
		ct = v.(string)
	} else if f, err := responseFormat(c.Query("_format"), c.GetHeader("Accept")); err == nil {
		ct = f
	}
	if c.Query("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	c.Data(status, ct+"; charset=utf-8", body)
}

// fail answers err as an OperationOutcome with the status its code maps
// to (outcome). Causes of 5xx errors are logged, never sent.
func (s *Server) fail(c *gin.Context, err error) {
	status, body := s.outcome(c.Request.Context(), c.GetString(ctxRequestID), c.Request.URL.Path, err)
	writeJSON(c, status, body)
	c.Abort()
}

// versionHeaders are ETag and Last-Modified for v.
func versionHeaders(v fhir.Version) http.Header {
	h := http.Header{}
	h.Set("ETag", etag(v.VersionID))
	h.Set("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
	return h
}

func etag(vid int64) string { return `W/"` + itoa(vid) + `"` }

func (s *Server) location(v fhir.Version) string {
	return s.base + "/" + v.Type + "/" + v.ID + "/_history/" + itoa(v.VersionID)
}

// writeResponse answers a create or update according to the Prefer
// header.
func (s *Server) writeResponse(r *Request, status int, v fhir.Version) *Response {
	resp := &Response{Status: status, Header: versionHeaders(v)}
	if status == http.StatusCreated || r.Method == http.MethodPut {
		resp.Header.Set("Location", s.location(v))
	}
	switch preferReturn(r.Header) {
	case "minimal":
	case "OperationOutcome":
		msg := "updated " + v.Type + "/" + v.ID + " to version " + itoa(v.VersionID)
		if status == http.StatusCreated {
			msg = "created " + v.Type + "/" + v.ID + " version " + itoa(v.VersionID)
		} else if r.Method == http.MethodPost {
			msg = "matched existing " + v.Type + "/" + v.ID + " (conditional create); nothing written"
		}
		issues := []fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational, Diagnostics: msg}}
		if status == http.StatusCreated || r.Method != http.MethodPost {
			issues = append(issues, s.writeWarnings(v)...)
		}
		resp.Body = fhir.OperationOutcomeMax(issues, s.lim.MaxIssues)
	default:
		resp.Body = v.JSON
	}
	return resp
}

// writeWarnings are the warnings (and information) that validating the
// version v as written yields: dom-6 for a resource without narrative,
// codes outside an extensible binding, profiles claimed but not held. The
// write went ahead despite them; a client that sent Prefer:
// return=OperationOutcome gets them beside the success information
// (issue 13: http.html#ops "Prefer: return=OperationOutcome"). They are
// computed here, from the stored JSON, rather than carried out of the
// write path, so that only clients asking pay for the second validation;
// the stored version is what was validated on the way in, plus the meta
// the server stamped, which no warning depends on.
func (s *Server) writeWarnings(v fhir.Version) []fhir.Issue {
	if v.Deleted || len(v.JSON) == 0 {
		return nil
	}
	res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		// Cannot happen for JSON this server just wrote; say so rather
		// than drop it silently.
		return []fhir.Issue{{Severity: fhir.SeverityWarning, Code: fhir.IssueProcessing,
			Diagnostics: "the written version could not be re-read to list its warnings: " + err.Error()}}
	}
	var out []fhir.Issue
	for _, is := range s.profiles.Validate(res) {
		if is.Severity != fhir.SeverityError && is.Severity != fhir.SeverityFatal {
			out = append(out, is)
		}
	}
	return out
}

// preferReturn reads return=... from the Prefer header ("" if absent).
func preferReturn(h http.Header) string { return preference(h, "return") }

// preference returns the value of one preference in the Prefer headers
// (RFC 7240: comma-separated preferences, each possibly with ;params).
func preference(h http.Header, name string) string {
	for _, h := range h.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			for _, part := range strings.Split(pref, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), name) {
					return strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
		}
	}
	return ""
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
