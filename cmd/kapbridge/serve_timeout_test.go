package main

import (
	"io"
	"testing"
	"time"

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
