package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

func TestCacheAge(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                         auth.DefaultJWKSAge,
		"max-age=60":               time.Minute,
		"public, max-age=3600":     time.Hour,
		"no-store":                 0,
		"max-age=60, no-cache":     0,
		"max-age=9999999999":       auth.MaxJWKSAge,
		"max-age=abc":              0,
		"max-age=-5":               0,
		`max-age="120"`:            2 * time.Minute,
		"private, must-revalidate": auth.DefaultJWKSAge,
	} {
		if got := auth.CacheAge(cc); got != want {
			t.Errorf("CacheAge(%q) = %s, want %s", cc, got, want)
		}
	}
}

// TestFetcherHonoursCacheControl: a JWK Set is fetched again only when
// its max-age has passed, and every time under no-store.
func TestFetcherHonoursCacheControl(t *testing.T) {
	key, _ := smart.GenerateKey(smart.ES384)
	set, _ := json.Marshal(key.PublicJWKS())
	var hits atomic.Int32
	cc := "max-age=60"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", cc)
		_, _ = w.Write(set)
	}))
	defer srv.Close()
	now := time.Unix(1_000_000, 0)
	f := &auth.Fetcher{Now: func() time.Time { return now }}
	ctx := context.Background()
	for range 3 {
		if _, err := f.FetchJWKS(ctx, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("max-age=60: %d fetches for 3 uses within it, want 1", hits.Load())
	}
	now = now.Add(61 * time.Second)
	cc = "no-store"
	for range 2 {
		if _, err := f.FetchJWKS(ctx, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 3 {
		t.Fatalf("after expiry, then no-store: %d fetches, want 3", hits.Load())
	}
}

// TestJWKSURLClient: a client registered with a JWKS URL only gets a
// token with a key published there.
func TestJWKSURLClient(t *testing.T) {
	key, _ := smart.GenerateKey(smart.RS384)
	set, _ := json.Marshal(key.PublicJWKS())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(set) }))
	defer srv.Close()
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "u", Tenant: "t", JWKSURL: srv.URL, Scopes: "system/*.rs"})
	gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: st, BaseURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := key.Sign(smart.Assertion{ClientID: "u", TokenURL: gw.TokenURL()})
	tr, err := gw.Issue(ctx, smart.TokenRequestForm(a, "system/Patient.rs"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := gw.Verify(ctx, tr.AccessToken)
	if err != nil || p.ClientID != "u" || p.Tenant != "t" || p.Scopes.String() != "system/Patient.rs" {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
	// Disabled later: its token stops working at the next client check.
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "u", Tenant: "t", JWKSURL: srv.URL, Scopes: "system/*.rs", Disabled: true})
	later := time.Now().Add(time.Minute)
	gw2, _ := auth.NewGateway(ctx, auth.GatewayConfig{Store: st, BaseURL: "https://gw.example", Now: func() time.Time { return later.Add(-30 * time.Second) }})
	if _, err := gw2.Verify(ctx, tr.AccessToken); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("a disabled client's token: err %v, want ErrUnauthorized", err)
	}
}

func TestDecide(t *testing.T) {
	rs, _ := smart.ParseScopes("system/Observation.rs system/Patient.read")
	all, _ := smart.ParseScopes("system/*.cruds")
	auditor, _ := smart.ParseScopes("system/AuditEvent.rs")
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	for _, tc := range []struct {
		name   string
		scopes smart.Scopes
		call   auth.Call
		ok     bool
	}{
		{"read", rs, auth.Call{Method: "GET", Path: "/Observation/1"}, true},
		{"read other type", rs, auth.Call{Method: "GET", Path: "/Encounter/1"}, false},
		{"write", rs, auth.Call{Method: "PUT", Path: "/Observation/1"}, false},
		{"include narrowed", rs, auth.Call{Method: "GET", Path: "/Observation", Query: q("_include=Observation:subject:Patient")}, true},
		{"include wide", rs, auth.Call{Method: "GET", Path: "/Observation", Query: q("_include=Observation:subject")}, false},
		{"include wildcard", all, auth.Call{Method: "GET", Path: "/Observation", Query: q("_include=*")}, true},
		{"revinclude", rs, auth.Call{Method: "GET", Path: "/Patient", Query: q("_revinclude=Observation:subject")}, true},
		{"revinclude forbidden", rs, auth.Call{Method: "GET", Path: "/Patient", Query: q("_revinclude=Provenance:target")}, false},
		{"chain", rs, auth.Call{Method: "GET", Path: "/Observation", Query: q("subject:Patient.name=x")}, true},
		{"has", rs, auth.Call{Method: "GET", Path: "/Patient", Query: q("_has:Observation:subject:code=x")}, true},
		{"has forbidden", rs, auth.Call{Method: "GET", Path: "/Patient", Query: q("_has:Condition:subject:code=x")}, false},
		{"conditional create searches", allBut(t, "system/Observation.c"), auth.Call{Method: "POST", Path: "/Observation", IfNoneExist: "identifier=a|b"}, false},
		{"conditional update", all, auth.Call{Method: "PUT", Path: "/Patient", Query: q("identifier=a|b")}, true},
		{"system history", all, auth.Call{Method: "GET", Path: "/_history"}, true},
		{"system history narrow", rs, auth.Call{Method: "GET", Path: "/_history"}, false},
		{"everything", all, auth.Call{Method: "GET", Path: "/Patient/1/$everything"}, true},
		{"audit by wildcard", all, auth.Call{Method: "GET", Path: "/AuditEvent"}, false},
		{"audit by auditor", auditor, auth.Call{Method: "GET", Path: "/AuditEvent"}, true},
		{"audit write", all, auth.Call{Method: "POST", Path: "/AuditEvent"}, false},
		{"audit delete by auditor", auditor, auth.Call{Method: "DELETE", Path: "/AuditEvent/1"}, false},
		{"bundle ok", rs, auth.Call{Method: "POST", Path: "/", Entries: []auth.Call{{Method: "GET", Path: "/Observation/1"}}}, true},
		{"bundle forbidden entry", rs, auth.Call{Method: "POST", Path: "/", Entries: []auth.Call{{Method: "GET", Path: "/Observation/1"}, {Method: "DELETE", Path: "/Observation/1"}}}, false},
		{"bundle audit entry", auditor, auth.Call{Method: "POST", Path: "/", Entries: []auth.Call{{Method: "GET", Path: "/AuditEvent"}}}, false},
	} {
		err := auth.Decide(tc.scopes, tc.call)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Decide = %v, want allowed %v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "permit") && !strings.Contains(err.Error(), "AuditEvent") {
			t.Errorf("%s: the refusal does not say what is not permitted: %v", tc.name, err)
		}
	}
}

func allBut(t *testing.T, s string) smart.Scopes {
	sc, err := smart.ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
