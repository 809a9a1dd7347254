package server_test

import (
	"net/http"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// TestCapabilityStatement: /metadata is a valid R4 CapabilityStatement
// that claims exactly the interactions the routes serve.
func TestCapabilityStatement(t *testing.T) {
	srv := newTestServer(t, backends(t)[0].open(t))
	r := srv.do(http.MethodGet, "/metadata", nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if _, typ, err := fhir.ParseResource(r.body); err != nil || typ != "CapabilityStatement" {
		t.Fatalf("the CapabilityStatement fails our own validator: %v", err)
	}
	cs := decode(t, r.body)
	if cs["fhirVersion"] != "4.0.1" || cs["kind"] != "instance" || cs["status"] != "active" {
		t.Errorf("header fields: %v %v %v", cs["fhirVersion"], cs["kind"], cs["status"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	resources := rest["resource"].([]any)
	if len(resources) != len(fhir.ResourceTypes()) {
		t.Errorf("%d resource entries, want one per R4 type (%d)", len(resources), len(fhir.ResourceTypes()))
	}
	want := map[string]bool{"read": true, "vread": true, "update": true, "delete": true, "history-instance": true, "create": true,
		"search-type": true, "history-type": true}
	for _, res := range resources {
		rm := res.(map[string]any)
		got := map[string]bool{}
		for _, in := range rm["interaction"].([]any) {
			got[in.(map[string]any)["code"].(string)] = true
		}
		if len(got) != len(want) {
			t.Fatalf("%v: interactions %v, want exactly %v", rm["type"], got, want)
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("%v lacks %s", rm["type"], k)
			}
		}
		typ := rm["type"].(string)
		params, _ := rm["searchParam"].([]any)
		if len(params) != len(search.ParamsFor(typ)) {
			t.Errorf("%s: %d searchParams listed, the registry has %d", typ, len(params), len(search.ParamsFor(typ)))
		}
		for _, p := range params {
			pm := p.(map[string]any)
			sp := search.Lookup(typ, pm["name"].(string))
			if sp == nil || pm["definition"] != sp.URL || pm["type"] != string(sp.Type) {
				t.Errorf("%s: searchParam %v does not match the registry", typ, pm)
			}
		}
	}
	sys := map[string]bool{}
	for _, in := range rest["interaction"].([]any) {
		sys[in.(map[string]any)["code"].(string)] = true
	}
	if !sys["transaction"] || !sys["batch"] || !sys["history-system"] || len(sys) != 3 {
		t.Errorf("system interactions %v, want transaction, batch, history-system", sys)
	}
	// Each claimed interaction answers something other than 404/405 for
	// a real type, which is what "claims nothing it does not do" means.
	pid := decode(t, srv.do("POST", "/Patient", patient("cs", "C")).body)["id"].(string)
	for _, c := range []struct{ method, path string }{
		{"GET", "/Patient/" + pid}, {"GET", "/Patient/" + pid + "/_history/1"}, {"GET", "/Patient/" + pid + "/_history"},
		{"GET", "/Patient?_id=" + pid}, {"GET", "/Patient/_history"}, {"GET", "/_history"}, {"GET", "/Patient/" + pid + "/$everything"},
	} {
		if r := srv.do(c.method, c.path, nil); r.status != 200 {
			t.Errorf("%s %s: %d", c.method, c.path, r.status)
		}
	}
	if r := srv.do("POST", "/Patient/$validate", patient("v", "V")); r.status != 200 {
		t.Errorf("$validate: %d", r.status)
	}
}

// TestHistoryBundleValidates: the Bundles the server writes pass its own
// validator.
func TestHistoryBundleValidates(t *testing.T) {
	srv := newTestServer(t, backends(t)[0].open(t))
	srv.do("PUT", "/Patient/h", []byte(`{"resourceType":"Patient","id":"h"}`))
	srv.do("PUT", "/Patient/h", []byte(`{"resourceType":"Patient","id":"h","active":true}`))
	srv.do("DELETE", "/Patient/h", nil)
	r := srv.do("GET", "/Patient/h/_history", nil)
	if _, _, err := fhir.ParseResource(r.body); err != nil {
		t.Fatalf("history Bundle fails validation: %v\n%s", err, r.body)
	}
}

// TestValidateOperation: $validate answers 200 with the issues, valid or
// not, and accepts a Parameters wrapper.
func TestValidateOperation(t *testing.T) {
	srv := newTestServer(t, backends(t)[0].open(t))
	r := srv.do("POST", "/Observation/$validate", []byte(`{"resourceType":"Observation","status":"bogus","code":{"text":"x"},"colour":1}`))
	issues := assertOutcome(t, r, 200)
	if !mentions(issues, "Observation.status") || !mentions(issues, "Observation.colour") {
		t.Errorf("want issues for status and colour: %s", r.body)
	}
	r = srv.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","active":true}}]}`))
	issues = assertOutcome(t, r, 200)
	if issues[0].(map[string]any)["severity"] != "information" {
		t.Errorf("valid Patient in Parameters: %s", r.body)
	}
	assertOutcome(t, srv.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient"}},{"name":"profile","valueUri":"http://x"}]}`)), 400)
}
