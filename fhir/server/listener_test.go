package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/server"
)

// rawExchange writes req on a new connection to addr (concurrently, since
// the server may answer before it has read everything) and reads one
// response.
func rawExchange(t *testing.T, addr string, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// TestListenerRewritesNetHTTPErrors sends requests net/http refuses by
// itself, before any handler, and checks that Listener turned each answer
// into an OperationOutcome with a correct Content-Length. A change in
// net/http's error answers (a new Go version) fails here first.
func TestListenerRewritesNetHTTPErrors(t *testing.T) {
	lim := server.Limits{MaxHeaderBytes: 4096}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	srv := &http.Server{
		Handler:        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1); w.WriteHeader(299) }),
		MaxHeaderBytes: lim.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	go func() { _ = srv.Serve(server.Listener(ln, lim)) }()
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	tests := []struct {
		name, req string
		status    int
		diag      string
	}{
		{"URL over the header limit", "GET /Patient?name=" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, "max-header-bytes = 4096"},
		{"control character in a header", "GET /metadata HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "control character"},
		{"bad header name", "GET /metadata HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400, "header name"},
		{"no Host", "GET /metadata HTTP/1.1\r\n\r\n", 400, "Host"},
		{"garbage request line", "HELLO\r\n\r\n", 400, "malformed request line"},
		{"unknown transfer coding", "POST /Patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "Transfer-Encoding"},
		{"HTTP/2 as text", "GET /metadata HTTP/2.0\r\nHost: x\r\n\r\n", 400, "HTTP version"},
		{"unknown expectation", "GET /metadata HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, "Expect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if resp.ContentLength != int64(len(body)) || !resp.Close {
				t.Errorf("Content-Length %d for %d bytes, Connection: close %v", resp.ContentLength, len(body), resp.Close)
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Severity, Code, Diagnostics string }
			}
			if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
				t.Fatalf("not an OperationOutcome: %v %s", err, body)
			}
			if !strings.Contains(oo.Issue[0].Diagnostics, tt.diag) {
				t.Errorf("diagnostics %q lack %q", oo.Issue[0].Diagnostics, tt.diag)
			}
		})
	}
	// A handler's answer passes untouched, on a connection that stays open.
	resp, _ := rawExchange(t, addr, "GET /metadata HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 299 || handled.Load() != 1 {
		t.Errorf("handler answer: %d, handled %d", resp.StatusCode, handled.Load())
	}
}
