package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// TestStringLimitFlags: -max-string-bytes and -max-total-string-bytes
// default to fhir.DefaultLimits, are set from the environment, the flag
// wins over it, and a negative value, a non-number, or a per-string limit
// over FHIR's 1 MB is a usage error. (TestServeInputEdges shows the flags
// reach the API.)
func TestStringLimitFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := parseServeFlags(nil, env(nil), io.Discard)
	if l := cfg.Limits.Resource; err != nil || l.MaxStringBytes != fhir.DefaultLimits.MaxStringBytes || l.MaxTotalStringBytes != fhir.DefaultLimits.MaxTotalStringBytes {
		t.Errorf("default: %d %d %v", l.MaxStringBytes, l.MaxTotalStringBytes, err)
	}
	e := env(map[string]string{"KAPBRIDGE_MAX_STRING_BYTES": "4096", "KAPBRIDGE_MAX_TOTAL_STRING_BYTES": "1000000"})
	cfg, err = parseServeFlags(nil, e, io.Discard)
	if l := cfg.Limits.Resource; err != nil || l.MaxStringBytes != 4096 || l.MaxTotalStringBytes != 1000000 {
		t.Errorf("env: %d %d %v, want 4096 1000000", l.MaxStringBytes, l.MaxTotalStringBytes, err)
	}
	cfg, err = parseServeFlags([]string{"-max-string-bytes", "100", "-max-total-string-bytes", "2000"}, e, io.Discard)
	if l := cfg.Limits.Resource; err != nil || l.MaxStringBytes != 100 || l.MaxTotalStringBytes != 2000 {
		t.Errorf("flag over env: %d %d %v, want 100 2000", l.MaxStringBytes, l.MaxTotalStringBytes, err)
	}
	cfg, err = parseServeFlags([]string{"-max-string-bytes", "1048576"}, env(nil), io.Discard)
	if err != nil || cfg.Limits.Resource.MaxStringBytes != 1<<20 {
		t.Errorf("-max-string-bytes 1048576 (FHIR's bound): %d %v", cfg.Limits.Resource.MaxStringBytes, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"-max-string-bytes", "-1"}, nil},
		{[]string{"-max-total-string-bytes", "-5"}, nil},
		{[]string{"-max-string-bytes", "1048577"}, nil},
		{nil, map[string]string{"KAPBRIDGE_MAX_STRING_BYTES": "2000000"}},
		{nil, map[string]string{"KAPBRIDGE_MAX_TOTAL_STRING_BYTES": "lots"}},
	} {
		if _, err := parseServeFlags(tc.args, env(tc.env), io.Discard); exitCode(err) != 2 {
			t.Errorf("%v %v: %v, want a usage error", tc.args, tc.env, err)
		}
	}
}

// TestDepthLimitFlag: -max-depth defaults to fhir.DefaultLimits (which
// accepts every official R4 example: fhir.TestDefaultDepthAcceptsExamples),
// is set from KAPBRIDGE_MAX_DEPTH, the flag wins over it, and a negative
// value, a non-number, or a depth over fhir.MaxDepthBound (what stored
// versions are re-read under) is a usage error; the setting reaches the
// API: a body one level deeper is refused naming the limit.
func TestDepthLimitFlag(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := parseServeFlags(nil, env(nil), io.Discard)
	if err != nil || cfg.Limits.Resource.MaxDepth != fhir.DefaultLimits.MaxDepth {
		t.Errorf("default: %d %v", cfg.Limits.Resource.MaxDepth, err)
	}
	e := env(map[string]string{"KAPBRIDGE_MAX_DEPTH": "40"})
	if cfg, err = parseServeFlags(nil, e, io.Discard); err != nil || cfg.Limits.Resource.MaxDepth != 40 {
		t.Errorf("env: %d %v, want 40", cfg.Limits.Resource.MaxDepth, err)
	}
	if cfg, err = parseServeFlags([]string{"-max-depth", "30"}, e, io.Discard); err != nil || cfg.Limits.Resource.MaxDepth != 30 {
		t.Errorf("flag over env: %d %v, want 30", cfg.Limits.Resource.MaxDepth, err)
	}
	if cfg, err = parseServeFlags([]string{"-max-depth", strconv.Itoa(fhir.MaxDepthBound)}, env(nil), io.Discard); err != nil || cfg.Limits.Resource.MaxDepth != fhir.MaxDepthBound {
		t.Errorf("-max-depth at the bound: %d %v", cfg.Limits.Resource.MaxDepth, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"-max-depth", "-1"}, nil},
		{[]string{"-max-depth", strconv.Itoa(fhir.MaxDepthBound + 1)}, nil},
		{nil, map[string]string{"KAPBRIDGE_MAX_DEPTH": "deep"}},
		{nil, map[string]string{"KAPBRIDGE_MAX_DEPTH": "5000"}},
	} {
		if _, err := parseServeFlags(tc.args, env(tc.env), io.Discard); exitCode(err) != 2 {
			t.Errorf("%v %v: %v, want a usage error", tc.args, tc.env, err)
		}
	}

	// Through serve: at -max-depth 6 a Patient nesting 6 levels is
	// written, one nesting 7 is refused (400, too-long) naming the limit.
	base := startServe(t, filepath.Join(t.TempDir(), "depth.db"), []string{"-max-depth", "6"}, nil)
	// Patient{} 1, contact[] 2, {} 3, name{} 4, _given[] 5, {} 6; and
	// period{} 5, extension[] 6, {} 7.
	ok := `{"resourceType":"Patient","contact":[{"name":{"given":["A"],"_given":[{"id":"g"}]}}]}`
	deep := `{"resourceType":"Patient","contact":[{"name":{"given":["A"],"period":{"extension":[{"url":"http://x.org/e","valueString":"v"}]}}]}`
	for _, tc := range []struct {
		body string
		want int
	}{{ok, http.StatusCreated}, {deep, http.StatusBadRequest}} {
		resp, err := http.Post(base+"/Patient", "application/fhir+json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || tc.want != http.StatusCreated && !strings.Contains(string(b), "max-depth = 6") {
			t.Errorf("%s: %d %s, want %d", tc.body, resp.StatusCode, b, tc.want)
		}
	}
}
