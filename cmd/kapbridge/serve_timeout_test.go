package main

import (
	"io"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/fhir/server"
)

func TestRequestTimeoutFlag(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := parseServeFlags(nil, env(nil), io.Discard)
	if err != nil || cfg.RequestTimeout != server.DefaultRequestTimeout {
		t.Errorf("default: %v %v, want %v", cfg.RequestTimeout, err, server.DefaultRequestTimeout)
	}
	cfg, err = parseServeFlags(nil, env(map[string]string{"KAPBRIDGE_REQUEST_TIMEOUT": "45s"}), io.Discard)
	if err != nil || cfg.RequestTimeout != 45*time.Second {
		t.Errorf("env: %v %v, want 45s", cfg.RequestTimeout, err)
	}
	cfg, err = parseServeFlags([]string{"-request-timeout", "2m"}, env(map[string]string{"KAPBRIDGE_REQUEST_TIMEOUT": "45s"}), io.Discard)
	if err != nil || cfg.RequestTimeout != 2*time.Minute {
		t.Errorf("flag over env: %v %v, want 2m", cfg.RequestTimeout, err)
	}
	for _, bad := range []string{"30", "0s", "-5s", "soon"} {
		if _, err := parseServeFlags([]string{"-request-timeout", bad}, env(nil), io.Discard); exitCode(err) != 2 {
			t.Errorf("-request-timeout %q: %v, want a usage error", bad, err)
		}
	}
}

func TestPracticeRequestTimeoutFlag(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := parseServeFlags(nil, env(nil), io.Discard)
	if err != nil || cfg.PracticeRequestTimeout != practice.DefaultRequestTimeout {
		t.Errorf("default: %v %v, want %v", cfg.PracticeRequestTimeout, err, practice.DefaultRequestTimeout)
	}
	cfg, err = parseServeFlags([]string{"-practice-request-timeout", "90s"}, env(map[string]string{"KAPBRIDGE_PRACTICE_REQUEST_TIMEOUT": "10m"}), io.Discard)
	if err != nil || cfg.PracticeRequestTimeout != 90*time.Second || cfg.RequestTimeout != server.DefaultRequestTimeout {
		t.Errorf("flag over env: %v %v %v, want 90s and the FHIR API's default", cfg.PracticeRequestTimeout, cfg.RequestTimeout, err)
	}
	for _, bad := range []string{"5", "0s", "-1m", "later"} {
		if _, err := parseServeFlags(nil, env(map[string]string{"KAPBRIDGE_PRACTICE_REQUEST_TIMEOUT": bad}), io.Discard); exitCode(err) != 2 {
			t.Errorf("KAPBRIDGE_PRACTICE_REQUEST_TIMEOUT=%q: %v, want a usage error", bad, err)
		}
	}
}
