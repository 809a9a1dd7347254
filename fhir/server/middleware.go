package server

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// Gin context keys.
const (
	ctxRequestID = "kapbridge.request_id"
	ctxFormat    = "kapbridge.format"
)

// requestID gives every request an id: the caller's X-Request-Id when it is
// a sane token, else a new one. It is echoed back and in every log line.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			id = NewUUID()
		}
		c.Set(ctxRequestID, id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// accessLog writes one structured line per request. It logs the path but
// never the query string (search parameters and identifiers can be PHI)
// and never a body.
func (s *Server) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request",
			slog.String("request_id", c.GetString(ctxRequestID)),
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)))
	}
}

// recoverPanic turns a panic into a 500 in the format of the request's
// API (an OperationOutcome on the FHIR API). The stack goes to the log
// only: a client never sees it.
func (s *Server) recoverPanic() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				id := c.GetString(ctxRequestID)
				s.log.Error("panic", "request_id", id, "panic", r, "stack", stack())
				if !c.Writer.Written() {
					fail(c, Failure{Kind: FailPanic, Message: fmt.Sprintf("internal error (request id %s)", id), Cause: fmt.Errorf("panic: %v", r)})
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// MaxBodyBytes is the default bound of a request body
// (Limits.MaxBodyBytes); larger bodies get 413.
const MaxBodyBytes = 16 << 20

// negotiate picks the response format from _format or Accept (JSON only:
// XML gets 406) and checks the request body's Content-Type (415 for
// anything but FHIR JSON or JSON, or a charset other than UTF-8), and
// bounds the body at maxBody bytes.
func negotiate(maxBody int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		format, err := responseFormat(c.Query("_format"), c.GetHeader("Accept"))
		if err != nil {
			c.Set(ctxFormat, mimeFHIRJSON)
			failStatic(c, err)
			return
		}
		c.Set(ctxFormat, format)
		if c.Request.ContentLength != 0 && (c.Request.Method == http.MethodPost || c.Request.Method == http.MethodPut) {
			if err := checkContentType(c.GetHeader("Content-Type"), c.Request.URL.Path); err != nil {
				failStatic(c, err)
				return
			}
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
		}
	}
}

// checkContentType refuses the Content-Type ct of a body sent to path: a
// charset other than UTF-8, or a type other than JSON except a form to
// _search (415).
func checkContentType(ct, path string) error {
	if _, params, err := mime.ParseMediaType(ct); err == nil {
		// JSON is UTF-8 (RFC 8259), and so is a form body here: another
		// charset would be decoded as UTF-8 and stored wrong, so it is
		// refused, not guessed at.
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return fhir.Errorf(fhir.IssueNotSupported, "", "unsupported charset %q in Content-Type %q: send the body as UTF-8 (charset=utf-8, or no charset)", cs, ct).WithStatus(http.StatusUnsupportedMediaType)
		}
	}
	if ct != "" && !isJSONMediaType(ct) && !strings.HasSuffix(path, "/_search") {
		// A form-encoded POST is accepted only by _search, which checks
		// its own body; everything else must be JSON.
		return fhir.Errorf(fhir.IssueNotSupported, "", "unsupported Content-Type %q: send application/fhir+json or application/json", ct).WithStatus(http.StatusUnsupportedMediaType)
	}
	return nil
}

func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == mimeFHIRJSON || mt == mimeJSON || mt == "application/json+fhir"
}

// responseFormat returns the media type to answer with.
func responseFormat(format, accept string) (string, error) {
	if format != "" {
		switch strings.ToLower(format) {
		case "json", mimeFHIRJSON:
			return mimeFHIRJSON, nil
		case mimeJSON:
			return mimeJSON, nil
		case "xml", "text/xml", "application/xml", "application/fhir+xml":
			return "", fhir.Errorf(fhir.IssueNotSupported, "", "_format %q: this server speaks FHIR JSON only", format).WithStatus(http.StatusNotAcceptable)
		default:
			return "", fhir.Errorf(fhir.IssueNotSupported, "", "_format %q is not a format this server produces (json, application/fhir+json, application/json)", format).WithStatus(http.StatusNotAcceptable)
		}
	}
	if accept == "" {
		return mimeFHIRJSON, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		switch mt {
		case mimeFHIRJSON, "application/json+fhir", "*/*", "application/*":
			return mimeFHIRJSON, nil
		case mimeJSON:
			return mimeJSON, nil
		}
	}
	return "", fhir.Errorf(fhir.IssueNotSupported, "", "Accept %q: this server produces application/fhir+json or application/json only", accept).WithStatus(http.StatusNotAcceptable)
}

// failStatic answers err before a Server is at hand.
func failStatic(c *gin.Context, err error) {
	fe := fhir.AsError(err)
	writeJSON(c, fhir.StatusOf(fe), fhir.OperationOutcome(fe.Issues))
	c.Abort()
}
