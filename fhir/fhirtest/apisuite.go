package fhirtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The FHIR REST API suite: what a FHIR R4 server must answer over HTTP,
// checked against a running gateway at a base URL, whatever is behind
// it. It is the seed of the conformance kit: kapbridge runs it against
// its own server in the process on the in-memory store (fhir/server), and
// against `kapbridge serve` on SQLite and PostgreSQL (cmd/kapbridge).

// Gateway is a running FHIR API under test.
type Gateway struct {
	// URL is the base URL, without a trailing slash, e.g.
	// "http://127.0.0.1:8080".
	URL string
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Dump, when set, renders everything the storage behind URL holds
	// (every table, every row), so the suite can check that a refused
	// request wrote nothing: equal dumps mean unchanged byte for byte.
	// Without it those checks are skipped, saying so.
	Dump func(t *testing.T) string
}

// GatewayOpener starts a gateway over fresh storage for test t and stops
// it when t ends. Fresh means holding no resources but those the gateway
// stores by itself (its own conformance resources); each call gets its
// own storage, so tests may run in parallel.
type GatewayOpener func(t *testing.T) *Gateway

// APIFeatures says where a gateway knowingly departs from what the suite
// expects, so the suite checks everything else (as Features does for
// stores). The zero value claims everything.
type APIFeatures struct {
	// RefusedExamples names official R4 examples (file names in
	// testdata/fhir-r4-examples) the gateway refuses although they are
	// valid R4, with why (a profile it enforces). The round trip expects
	// them refused with a 4xx; the searches run without them.
	RefusedExamples map[string]string
}

// RunAPISuite runs the suite against gateways from open. Each subtest
// gets its own gateway and runs in parallel with the others.
func RunAPISuite(t *testing.T, open GatewayOpener) {
	RunAPISuiteWith(t, open, APIFeatures{})
}

// RunAPISuiteWith is RunAPISuite for a gateway that departs from the
// suite where f says.
func RunAPISuiteWith(t *testing.T, open GatewayOpener, f APIFeatures) {
	runCases(t, []suiteCase[*apiClient]{
		{"Interactions", apiTestInteractions},
		{"ErrorsAreOperationOutcomes", apiTestErrors},
		{"ConditionalCreateRace", apiTestConditionalCreateRace},
		{"ConcurrentUpdatesLoseNoVersion", apiTestConcurrentUpdates},
		{"IfMatchRace", apiTestIfMatchRace},
		{"ConditionalRaceShapes", apiTestConditionalRaceShapes},
		{"CapabilityStatement", apiTestCapabilityStatement},
		{"ValidateOperation", apiTestValidateOperation},
		{"TypeAndSystemHistory", apiTestHistory},
		{"PagingStableUnderWrites", apiTestPaging},
		{"SearchConformance", apiTestSearchConformance},
		{"EveryDeclaredParameterWorks", apiTestDeclaredParameters},
		{"SearchLimits", apiTestSearchLimits},
		{"OfficialExamplesRoundTrip", apiTestExamplesRoundTrip},
		{"InvalidResourcesRefused", apiTestInvalidResources},
		{"NULRefused", apiTestNUL},
		{"PsychotherapyNotesWithheld", apiTestNotesWithheld},
		{"TransactionAtomic", apiTestTransactionAtomic},
		{"TransactionRewritesReferences", apiTestTransactionReferences},
		{"BatchMixed", apiTestBatchMixed},
		{"TransactionConditional", apiTestTransactionConditional},
		{"TransactionConditionalReferences", apiTestTransactionConditionalReferences},
		{"TransactionDuplicates", apiTestTransactionDuplicates},
		{"BundleRefused", apiTestBundleRefused},
		{"TransactionPreferAndGet", apiTestTransactionPreferAndGet},
		{"Transaction1000", apiTestTransaction1000},
		{"HistoryMethods", apiTestHistoryMethods},
		{"EverythingPaging", apiTestEverythingPaging},
		{"Patch", apiTestPatch},
		{"ConditionalDelete", apiTestConditionalDelete},
		{"DeepSearch", apiTestDeepSearch},
		{"ValidateModes", apiTestValidateModes},
		{"BundlePatch", apiTestBundlePatch},
		{"WriteWarnings", apiTestWriteWarnings},
	}, func(t *testing.T) *apiClient { c := newAPIClient(t, open(t)); c.features = f; return c }, nil)
}

// apiClient sends the suite's requests to one gateway.
type apiClient struct {
	*Gateway
	t        *testing.T
	features APIFeatures
}

func newAPIClient(t *testing.T, g *Gateway) *apiClient {
	if g.Client == nil {
		g.Client = http.DefaultClient
	}
	return &apiClient{Gateway: g, t: t}
}

// in is c for subtest t: do fails t, the test whose goroutine calls it.
func (c *apiClient) in(t *testing.T) *apiClient {
	cc := *c
	cc.t = t
	return &cc
}

// apiResponse is an answer, read whole.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and fails the test if it cannot; headers alternate
// name and value. Only the test's goroutine may call it (it may call
// t.Fatal); others use try.
func (c *apiClient) do(method, path string, body []byte, headers ...string) apiResponse {
	c.t.Helper()
	r, err := c.try(method, path, body, headers...)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// try sends a request: a JSON body (FHIR JSON unless headers say
// otherwise) to path, relative to the base URL.
func (c *apiClient) try(method, path string, body []byte, headers ...string) (apiResponse, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		return apiResponse{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return apiResponse{resp.StatusCode, resp.Header, b}, nil
}

// local is a link of the gateway's (an absolute URL) as a path for do.
func (c *apiClient) local(link string) string { return strings.TrimPrefix(link, c.URL) }

// dump is the gateway's Dump, or "" with a note when it has none.
func (c *apiClient) dump(t *testing.T) string {
	t.Helper()
	if c.Dump == nil {
		t.Log("the gateway has no Dump: whether refused requests stored nothing is not checked")
		return ""
	}
	return c.Dump(t)
}

// apiDecode decodes a JSON object, numbers as json.Number.
func apiDecode(b []byte) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object (%v): %.300s", err, b)
	}
	return m, nil
}

// decode is apiDecode for the test's goroutine: it fails t.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, err := apiDecode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// idOf is the id of the resource in an answer, "" if there is none.
func idOf(b []byte) string {
	m, err := apiDecode(b)
	if err != nil {
		return ""
	}
	id, _ := m["id"].(string)
	return id
}

// assertOutcome checks that r is an OperationOutcome with the status
// wanted, and returns its issues.
func assertOutcome(t *testing.T, r apiResponse, status int) []any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %.600s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want FHIR JSON", ct)
	}
	m := decode(t, r.body)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("body is a %v, want OperationOutcome: %.300s", m["resourceType"], r.body)
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.body)
	}
	for _, is := range issues {
		im := is.(map[string]any)
		if im["severity"] == nil || im["code"] == nil {
			t.Errorf("issue lacks severity or code: %v", im)
		}
	}
	return issues
}

// diagnostics joins an OperationOutcome's diagnostics and expressions.
func diagnostics(issues []any) string {
	var b strings.Builder
	for _, is := range issues {
		m := is.(map[string]any)
		fmt.Fprintf(&b, "%v %v; ", m["diagnostics"], m["expression"])
	}
	return b.String()
}

// issueExpressions returns every expression of an OperationOutcome's
// issues.
func issueExpressions(issues []any) []string {
	var out []string
	for _, is := range issues {
		exprs, _ := is.(map[string]any)["expression"].([]any)
		for _, x := range exprs {
			out = append(out, x.(string))
		}
	}
	return out
}

// mentions reports whether any issue's expression contains want.
func mentions(issues []any, want string) bool {
	for _, x := range issueExpressions(issues) {
		if strings.Contains(x, want) {
			return true
		}
	}
	return false
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// withoutServerMeta drops what the server owns (id, meta.versionId,
// meta.lastUpdated) so a stored resource can be compared with what was
// sent, as decoded JSON.
func withoutServerMeta(m map[string]any) map[string]any {
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}

func jsonEqual(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }

// nextLink is a Bundle's next link, "" on the last page.
func nextLink(b map[string]any) string {
	links, _ := b["link"].([]any)
	for _, l := range links {
		if m := l.(map[string]any); m["relation"] == "next" {
			return m["url"].(string)
		}
	}
	return ""
}

// toJSON is v as JSON, for messages.
func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ExamplesDir is the directory of the official R4 examples
// (testdata/fhir-r4-examples of the module), found from the working
// directory of the test, wherever in the module it runs.
func ExamplesDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "testdata", "fhir-r4-examples")
		if _, err := os.Stat(p); err == nil {
			return p
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testdata/fhir-r4-examples not found above the working directory")
		}
		dir = parent
	}
}
