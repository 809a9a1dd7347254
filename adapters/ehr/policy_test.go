package ehr

import (
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := RetryPolicy{MinWait: 100 * time.Millisecond, MaxWait: time.Second}.withDefaults()
	for n, step := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		step *= time.Millisecond
		if n >= 4 {
			step = time.Second
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.backoff(n)
			if d < step/2 || d > step {
				t.Fatalf("retry %d waits %s, want within [%s, %s]", n, d, step/2, step)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Fatalf("retry %d: only %d distinct waits in 200: no jitter", n, len(seen))
		}
	}
	if d := p.backoff(1000); d > time.Second {
		t.Fatalf("huge retry number: %s", d)
	}
}

func TestRetryPolicyDefaults(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	if p.MaxRetries != 4 || p.MinWait != 500*time.Millisecond || p.MaxWait != 30*time.Second || p.MaxRetryAfter != 2*time.Minute || p.AttemptTimeout != time.Minute {
		t.Fatalf("%+v", p)
	}
	if (RetryPolicy{MaxRetries: -1}).withDefaults().MaxRetries != 0 {
		t.Fatal("negative MaxRetries is not none")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{" 5 ", 5 * time.Second, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute, true}, // RFC 850
		{"Sun Mar  1 12:00:10 2026", 10 * time.Second, true},  // asctime
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},            // past
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
		{"99999999999999", 365 * 24 * time.Hour, true},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		got, ok := retryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q = %s, %v; want %s, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryableClassification(t *testing.T) {
	for code, want := range map[int]bool{200: false, 400: false, 401: false, 404: false, 409: false, 412: false, 429: true,
		500: true, 501: false, 502: true, 503: true, 504: true, 599: true, 0: true} {
		if retryableStatus(code) != want {
			t.Errorf("status %d retryable = %v", code, !want)
		}
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	if !notSent(dial) || notSent(read) || !notSent(&net.DNSError{Err: "no such host", Name: "ehr.invalid"}) {
		t.Error("notSent: a dial or DNS error never left; a read error may have")
	}
	if !retryableError(read) || retryableError(errTooManyRedirects) {
		t.Error("retryableError")
	}
	for m, want := range map[string]bool{"GET": true, "PUT": true, "DELETE": true, "HEAD": true, "POST": false, "PATCH": false} {
		if idempotentMethod(m) != want {
			t.Errorf("%s idempotent = %v", m, !want)
		}
	}
}
