package main

import (
	"io"
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
