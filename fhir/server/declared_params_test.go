package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/search"
)

// sampleValue is a well-formed search value for a parameter of type pt.
func sampleValue(p *search.Param) string {
	switch p.Type {
	case search.Token:
		return "http://example.org|x"
	case search.String:
		return "x"
	case search.Date:
		return "ge2020-01-01"
	case search.Number:
		return "gt1"
	case search.Quantity:
		return "lt5|http://unitsofmeasure.org|mg"
	case search.Reference:
		if len(p.Targets) > 0 {
			return p.Targets[0] + "/x"
		}
		return "Patient/x"
	case search.URI:
		return "http://example.org/x"
	}
	return ""
}

// TestEveryDeclaredParameterWorks: each search parameter the
// CapabilityStatement declares answers 200 with a searchset Bundle, with a
// typed value and with :missing, as Inferno checks.
func TestEveryDeclaredParameterWorks(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			srv.do(http.MethodPut, "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`))
			cs := decode(t, srv.do(http.MethodGet, "/metadata", nil).body)
			n := 0
			for _, res := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
				rm := res.(map[string]any)
				typ := rm["type"].(string)
				params, _ := rm["searchParam"].([]any)
				for _, sp := range params {
					code := sp.(map[string]any)["name"].(string)
					p := search.Lookup(typ, code)
					queries := []string{url.QueryEscape(code+":missing") + "=true"}
					if v := sampleValue(p); v != "" {
						queries = append(queries, url.QueryEscape(code)+"="+url.QueryEscape(v))
					}
					for _, q := range queries {
						r := srv.do(http.MethodGet, "/"+typ+"?"+q, nil, "Prefer", "handling=strict")
						if r.status != 200 || decode(t, r.body)["type"] != "searchset" {
							t.Errorf("declared %s?%s answers %d: %.300s", typ, q, r.status, r.body)
						}
						n++
					}
				}
				incs, _ := rm["searchInclude"].([]any)
				for _, inc := range incs {
					if r := srv.do(http.MethodGet, "/"+typ+"?_include="+url.QueryEscape(inc.(string)), nil, "Prefer", "handling=strict"); r.status != 200 {
						t.Errorf("declared _include %s answers %d: %.300s", inc, r.status, r.body)
					}
				}
				if revs, ok := rm["searchRevInclude"].([]any); ok {
					for _, inc := range revs {
						if r := srv.do(http.MethodGet, "/"+typ+"?_revinclude="+url.QueryEscape(inc.(string)), nil, "Prefer", "handling=strict"); r.status != 200 {
							t.Errorf("declared _revinclude %s answers %d: %.300s", inc, r.status, r.body)
						}
					}
				}
			}
			if n < 2000 {
				t.Errorf("only %d declared-parameter searches ran", n)
			}
		})
	}
}
