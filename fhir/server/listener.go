package server

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
)

// Listener returns ln with its connections wrapped so that the answers
// net/http writes by itself, before any handler runs, are OperationOutcomes
// like every other answer of the API. net/http answers a request it cannot
// read (a request line and headers over MaxHeaderBytes: 431; a control
// character in a header, a missing Host, bad framing: 400; an unknown
// Transfer-Encoding: 501; an HTTP version it does not speak: 505; an
// Expect other than 100-continue: 417) straight on the connection, in
// text/plain, and closes it; no handler or middleware sees those requests.
//
// Each of those answers is one Write of a shape no handler produces
// (net/http's server.go: the status line, then exactly "Content-Type:
// text/plain; charset=utf-8" and "Connection: close", then the status text
// as the body; a 417 has only Connection, Date and "Content-Length: 0").
// The wrapper recognises exactly those writes and sends instead an
// application/fhir+json OperationOutcome with a correct Content-Length,
// still closing the connection. Statuses of the 5xx class (501, 505)
// become 400: the request is what was wrong. Anything else is written
// through untouched.
//
// lim names the header limit in the 431's diagnostics; give the server
// the same value as http.Server.MaxHeaderBytes.
func Listener(ln net.Listener, lim Limits) net.Listener {
	return &edgeListener{Listener: ln, maxHeader: lim.WithDefaults().MaxHeaderBytes}
}

// AuditedListener is Listener, and each request it answers itself (no
// handler, so no audit middleware, ever sees those) also gets its audit
// record in rec: the method and path of its request line where one could
// be read (never the query: it can carry PHI), the status, the peer's
// address. No client is known: the request was never authenticated.
func AuditedListener(ln net.Listener, lim Limits, rec AuditRecorder) net.Listener {
	return &edgeListener{Listener: ln, maxHeader: lim.WithDefaults().MaxHeaderBytes, rec: rec}
}

type edgeListener struct {
	net.Listener
	maxHeader int
	rec       AuditRecorder
}

func (l *edgeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &edgeConn{Conn: c, maxHeader: l.maxHeader, rec: l.rec}, nil
}

// edgeConn rewrites net/http's own error answers (see Listener).
type edgeConn struct {
	net.Conn
	maxHeader int
	rec       AuditRecorder
	// head holds the start of the request being read (up to its first
	// line), for the audit record of a refusal; a written answer ends
	// the request, so the next read starts a new one.
	head     []byte
	answered bool
}

// maxRequestLine bounds what head keeps of a request line.
const maxRequestLine = 2048

func (c *edgeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.rec != nil && n > 0 {
		if c.answered {
			c.head, c.answered = c.head[:0], false
		}
		if room := maxRequestLine - len(c.head); room > 0 && bytes.IndexByte(c.head, '\n') < 0 {
			c.head = append(c.head, p[:min(n, room)]...)
		}
	}
	return n, err
}

func (c *edgeConn) Write(p []byte) (int, error) {
	if out, ok := rewriteHTTPError(p, c.maxHeader); ok {
		if c.rec != nil {
			c.audit(out)
		}
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.answered = true
	return c.Conn.Write(p)
}

// audit records the refusal out answers.
func (c *edgeConn) audit(out []byte) {
	r := audit.Record{When: time.Now()}
	r.Status, _ = strconv.Atoi(string(out[len(statusLinePrefix) : len(statusLinePrefix)+3]))
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		r.Address = host
	}
	line, _, _ := bytes.Cut(c.head, []byte("\n"))
	if m, target, ok := strings.Cut(strings.TrimSpace(string(line)), " "); ok && validMethod(m) && strings.HasPrefix(target, "/") {
		r.Method = m
		target, _, _ = strings.Cut(target, " ")
		r.Path, _, _ = strings.Cut(target, "?")
	}
	_ = c.rec.Record(r) // the recorder logs what it cannot write
}

// validMethod reports whether m is an HTTP method token.
func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, ch := range m {
		if ch < 'A' || ch > 'Z' {
			return false
		}
	}
	return true
}

// CloseWrite lets net/http half-close after a 431 (closeWriteAndWait), so
// the client can read the answer while it is still sending.
func (c *edgeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// The exact headers of net/http's plain-text error answers.
const (
	netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	statusLinePrefix    = "HTTP/1.1 "
)

// rewriteHTTPError returns the OperationOutcome answer for p when p is one
// of net/http's own error answers.
func rewriteHTTPError(p []byte, maxHeader int) ([]byte, bool) {
	// The plain-text answers always say HTTP/1.1; a 417 says the
	// request's version.
	http10 := bytes.HasPrefix(p, []byte("HTTP/1.0 "))
	if !http10 && !bytes.HasPrefix(p, []byte(statusLinePrefix)) {
		return nil, false
	}
	s := string(p[len(statusLinePrefix):])
	if rest, ok := strings.CutPrefix(s, "417 Expectation Failed\r\n"); ok {
		// sendExpectationFailed: Connection, Date and Content-Length 0 in
		// whatever order, nothing else, no body.
		hdr, ok := strings.CutSuffix(rest, "\r\n\r\n")
		if !ok || !strings.Contains(hdr+"\r\n", "Content-Length: 0\r\n") || !strings.Contains(hdr, "Connection: close") || strings.Count(hdr, "\r\n") > 2 {
			return nil, false
		}
		return outcomeResponse(http.StatusExpectationFailed, fhir.Errorf(fhir.IssueNotSupported, "",
			"the Expect header asks for something this server does not do: only Expect: 100-continue is supported")), true
	}
	statusText, body, ok := strings.Cut(s, netHTTPErrorHeaders)
	if !ok || http10 || len(statusText) < 4 || statusText[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(statusText[:3])
	if err != nil || code < 400 {
		return nil, false
	}
	// The body is the status line's text again (or, for a transfer
	// coding, a fixed sentence): anything else is not net/http's.
	detail, _ := strings.CutPrefix(statusText[4:], http.StatusText(code))
	detail = strings.TrimPrefix(detail, ": ")
	if body != statusText && !(code == http.StatusNotImplemented && body == "Unsupported transfer encoding") {
		return nil, false
	}
	var e *fhir.Error
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		e = fhir.Errorf(fhir.IssueTooLong, "", "the request line and headers are larger than %s: a search that long can be sent as POST [type]/_search with a form body",
			fhir.LimitText("max-header-bytes", int64(maxHeader))).WithStatus(code)
	case http.StatusNotImplemented:
		e = fhir.Errorf(fhir.IssueNotSupported, "", "the request's Transfer-Encoding is not supported: send the body with Content-Length, or Transfer-Encoding: chunked").
			WithStatus(http.StatusBadRequest)
	case http.StatusHTTPVersionNotSupported:
		e = fhir.Errorf(fhir.IssueNotSupported, "", "the request's HTTP version is not supported: send HTTP/1.1 (or HTTP/1.0)").
			WithStatus(http.StatusBadRequest)
	default:
		// net/http's reader refuses most malformed headers (a control
		// character in a value, for one) without saying which.
		why := "the request is not valid HTTP/1.1: a malformed request line, a malformed header (such as one holding a control character), or bad message framing"
		switch detail {
		case "invalid header value":
			why = "a request header value holds a character HTTP does not allow, such as a control character"
		case "invalid header name":
			why = "a request header name holds a character HTTP does not allow"
		case "missing required Host header":
			why = "the request has no Host header, which HTTP/1.1 requires"
		case "malformed Host header":
			why = "the request's Host header is malformed"
		case "":
		default:
			why = "the request is not valid HTTP: " + detail
		}
		e = fhir.Errorf(fhir.IssueStructure, "", "%s", why)
		if code >= 500 {
			code = http.StatusBadRequest
		}
		e.WithStatus(code)
	}
	return outcomeResponse(fhir.StatusOf(e), e), true
}

// outcomeResponse is a whole HTTP/1.1 answer: e as an OperationOutcome,
// closing the connection (net/http closes it after these answers).
func outcomeResponse(status int, e *fhir.Error) []byte {
	body := fhir.OperationOutcome(e.Issues)
	var b bytes.Buffer
	b.WriteString(statusLinePrefix + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.WriteString("Content-Type: " + mimeFHIRJSON + "; charset=utf-8\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n")
	b.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}
