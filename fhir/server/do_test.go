package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// doTargets are requests whose answers over HTTP (Gin's router and the
// middleware) and in the process (Server.Do, the route table matched by
// the server itself) must be the same: every route, the static segments
// that win over parameters, unknown types, paths no route has, methods a
// path does not take, and the checks of the path and the format.
var doTargets = []struct{ method, target string }{
	{"GET", "/metadata"}, {"GET", "/metadata/x"}, {"GET", "/_history"}, {"GET", "/_history/x"},
	{"GET", "/doc/schema.json"}, {"GET", "/"},
	{"GET", "/Patient"}, {"GET", "/Patient?family=Ng&_pretty=true"}, {"GET", "/Patient?bogus=1"},
	{"GET", "/Patient?birthdate=notadate"}, {"GET", "/Patient/p1"}, {"GET", "/Patient/gone"},
	{"GET", "/Patient/nope"}, {"GET", "/Patient/not_an_id"}, {"GET", "/Patient/_history"},
	{"GET", "/Patient/p1/_history"}, {"GET", "/Patient/p1/_history/1"}, {"GET", "/Patient/p1/_history/x"},
	{"GET", "/Patient/gone/_history/2"}, {"GET", "/Patient/p1/_history/1/x"}, {"GET", "/Patient/p1/Observation"},
	{"GET", "/Patient/p1/Patient"}, {"GET", "/Patient/p1/$everything"}, {"GET", "/Patient/p1/Nope"},
	{"GET", "/Observation/o1/Patient"}, {"GET", "/Patient/_search"}, {"GET", "/Patients/1"},
	{"GET", "/Patient/1/foo/bar/baz"}, {"GET", "/Patient/p1?_format=xml"}, {"GET", "/Patient/p1?_format=application/json"},
	{"GET", "/Patient/a%00b"}, {"GET", "/Patient//p1"}, {"GET", "/Patient/./p1"}, {"GET", "/Patient/p1/"},
	{"DELETE", "/"}, {"PATCH", "/Patient/p1"}, {"POST", "/metadata"}, {"PUT", "/Patient"}, {"DELETE", "/Patient"},
	{"DELETE", "/Patient/nope"}, {"POST", "/Patient/$everything"},
}

// newDoServer is a server over a store holding Patient p1 (two
// versions), the deleted Patient gone and Observation o1, with a fixed
// clock and ids so that two answers to one request are equal.
func newDoServer(t *testing.T) (*server.Server, string) {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	var srv *server.Server
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { srv.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv = server.New(server.Config{Store: st, BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }, NewID: func() string { return "fixed-id" },
		Documents: []server.Document{{Path: "/doc/schema.json", ContentType: "application/schema+json", Body: []byte(`{"$id":"x"}`)}}})
	for _, w := range []struct{ method, path, body string }{
		{"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Ng"}]}`},
		{"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Ng"}],"active":true}`},
		{"PUT", "/Patient/gone", `{"resourceType":"Patient","id":"gone"}`},
		{"DELETE", "/Patient/gone", ``},
		{"PUT", "/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
	} {
		req := httptest.NewRequest(w.method, w.path, strings.NewReader(w.body))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", w.method, w.path, rec.Code, rec.Body)
		}
	}
	return srv, ts.URL
}

// compactJSON is b compacted when it is JSON (the HTTP answer may be
// indented by _pretty), else b.
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		return buf.String()
	}
	return string(b)
}

// TestDoAnswersAsHTTP: Server.Do answers every request of doTargets with
// the status, version headers and body the HTTP API gives it.
func TestDoAnswersAsHTTP(t *testing.T) {
	srv, base := newDoServer(t)
	for _, tc := range doTargets {
		req, err := http.NewRequest(tc.method, base+tc.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(resp.Body)
		resp.Body.Close()

		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got, derr := srv.Do(context.Background(), &server.Request{Method: tc.method, URL: u, Header: http.Header{}})
		status, header, body := 0, http.Header{}, []byte(nil)
		if got != nil && got.Header != nil {
			header = got.Header
		}
		if derr != nil {
			fe := fhir.AsError(derr)
			status, body = fhir.StatusOf(fe), fhir.OperationOutcome(fe.Issues)
		} else {
			status, body = got.Status, got.Body
		}
		if status != resp.StatusCode {
			t.Errorf("%s %s: Do answers %d, HTTP %d (%s)", tc.method, tc.target, status, resp.StatusCode, want)
			continue
		}
		for _, h := range []string{"ETag", "Last-Modified", "Location"} {
			if header.Get(h) != resp.Header.Get(h) {
				t.Errorf("%s %s: %s %q by Do, %q over HTTP", tc.method, tc.target, h, header.Get(h), resp.Header.Get(h))
			}
		}
		if compactJSON(body) != compactJSON(want) {
			t.Errorf("%s %s: Do answers\n%s\nHTTP\n%s", tc.method, tc.target, body, want)
		}
	}
}

// TestBatchGetAnswersAsGet: a batch entry GET answers as the GET request
// does: the same status, ETag, Last-Modified and body (the resource, or
// the OperationOutcome of a failure).
func TestBatchGetAnswersAsGet(t *testing.T) {
	_, base := newDoServer(t)
	var entries []any
	var targets []string
	for _, tc := range doTargets {
		// Only GETs are GET entries, and "/" is the Bundle's own endpoint.
		if tc.method != "GET" || tc.target == "/" {
			continue
		}
		targets = append(targets, tc.target)
		entries = append(entries, map[string]any{"request": map[string]any{"method": "GET", "url": strings.TrimPrefix(tc.target, "/")}})
	}
	body := mustJSON(t, map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries})
	resp, err := http.Post(base+"/", "application/fhir+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Response struct {
				Status       string          `json:"status"`
				Etag         string          `json:"etag"`
				LastModified string          `json:"lastModified"`
				Outcome      json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	err = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(b.Entry) != len(targets) {
		t.Fatalf("batch: %d %v, %d entries for %d GETs", resp.StatusCode, err, len(b.Entry), len(targets))
	}
	for i, target := range targets {
		r, err := http.Get(base + target)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(r.Body)
		r.Body.Close()
		e := b.Entry[i].Response
		got := b.Entry[i].Resource
		if r.StatusCode >= 400 {
			got = e.Outcome
		}
		if !strings.HasPrefix(e.Status, strconv.Itoa(r.StatusCode)+" ") {
			t.Errorf("GET %s: entry status %q, request %d", target, e.Status, r.StatusCode)
		}
		if e.Etag != r.Header.Get("ETag") {
			t.Errorf("GET %s: entry etag %q, request %q", target, e.Etag, r.Header.Get("ETag"))
		}
		if (e.LastModified == "") != (r.Header.Get("Last-Modified") == "") {
			t.Errorf("GET %s: entry lastModified %q, request %q", target, e.LastModified, r.Header.Get("Last-Modified"))
		}
		if isJSON := len(want) > 0 && want[0] == '{'; isJSON && compactJSON(got) != compactJSON(want) {
			t.Errorf("GET %s: entry answers\n%s\nrequest\n%s", target, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
