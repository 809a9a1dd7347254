package fhirtest

import (
	"strings"
	"testing"
)

// warningsOf are the diagnostics of an OperationOutcome's warning issues,
// and whether its first issue is the success information.
func warningsOf(issues []any) (warnings []string, leadsWithInfo bool) {
	for i, is := range issues {
		m, _ := is.(map[string]any)
		if i == 0 {
			leadsWithInfo = m["severity"] == "information"
		}
		if m["severity"] == "warning" {
			d, _ := m["diagnostics"].(string)
			warnings = append(warnings, d)
		}
	}
	return warnings, leadsWithInfo
}

// hasDom6 says whether one of the warnings is the dom-6 invariant ("a
// resource should have narrative").
func hasDom6(warnings []string) bool {
	for _, w := range warnings {
		if strings.HasPrefix(w, "dom-6") {
			return true
		}
	}
	return false
}

// apiTestWriteWarnings: a write that succeeds despite warnings lists them
// in the OperationOutcome a client asks for with Prefer:
// return=OperationOutcome (issue 13), after the success information, on
// create, update, patch and in the entries of transactions and batches;
// a resource without warnings gets the information alone; other Prefer
// values answer as before.
func apiTestWriteWarnings(t *testing.T, c *apiClient) {
	const oo = "return=OperationOutcome"
	bare := `{"resourceType":"Patient","active":true}`
	narr := `{"resourceType":"Patient","id":"ww1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">A patient</div>"},"active":true}`
	outcome := func(what string, r apiResponse, status int, wantDom6 bool) {
		t.Helper()
		issues := assertOutcome(t, r, status)
		w, info := warningsOf(issues)
		if !info {
			t.Errorf("%s: the first issue is not the success information: %s", what, r.body)
		}
		if hasDom6(w) != wantDom6 {
			t.Errorf("%s: dom-6 warning listed %v, want %v: %s", what, hasDom6(w), wantDom6, r.body)
		}
	}

	outcome("create without narrative", c.do("POST", "/Patient", []byte(bare), "Prefer", oo), 201, true)
	for _, prefer := range []string{"return=representation", ""} {
		var h []string
		if prefer != "" {
			h = []string{"Prefer", prefer}
		}
		r := c.do("POST", "/Patient", []byte(bare), h...)
		if m := decode(t, r.body); r.status != 201 || m["resourceType"] != "Patient" || m["active"] != true {
			t.Errorf("create with Prefer %q: %d %s, want 201 and the Patient", prefer, r.status, r.body)
		}
	}
	if r := c.do("POST", "/Patient", []byte(bare), "Prefer", "return=minimal"); r.status != 201 || len(r.body) != 0 {
		t.Errorf("create with return=minimal: %d %q, want 201 and no body", r.status, r.body)
	}

	outcome("update creating, with narrative", c.do("PUT", "/Patient/ww1", []byte(narr), "Prefer", oo), 201, false)
	outcome("update without narrative", c.do("PUT", "/Patient/ww1", []byte(`{"resourceType":"Patient","id":"ww1"}`), "Prefer", oo), 200, true)
	c.do("PUT", "/Patient/ww1", []byte(narr))
	outcome("patch removing the narrative", c.do("PATCH", "/Patient/ww1", []byte(`[{"op":"remove","path":"/text"}]`),
		"Content-Type", "application/json-patch+json", "Prefer", oo), 200, true)

	// A conditional create that matched wrote nothing: no warnings about a
	// write to list, only what happened.
	ident := `{"resourceType":"Patient","identifier":[{"system":"urn:ww","value":"1"}]}`
	outcome("conditional create, new", c.do("POST", "/Patient", []byte(ident), "If-None-Exist", "identifier=urn:ww|1", "Prefer", oo), 201, true)
	outcome("conditional create, matched", c.do("POST", "/Patient", []byte(ident), "If-None-Exist", "identifier=urn:ww|1", "Prefer", oo), 200, false)

	for _, kind := range []string{"transaction", "batch"} {
		r := c.do("POST", "/", txBundle(t, kind, req("POST", "Patient", bare), req("PUT", "Patient/ww-"+kind, strings.Replace(narr, `"ww1"`, `"ww-`+kind+`"`, 1))), "Prefer", oo)
		es := responseBundle(t, r, kind+"-response", 2)
		for i, wantDom6 := range []bool{true, false} {
			resp, _ := es[i]["response"].(map[string]any)
			o, _ := resp["outcome"].(map[string]any)
			issues, _ := o["issue"].([]any)
			w, info := warningsOf(issues)
			if len(issues) == 0 || !info || hasDom6(w) != wantDom6 {
				t.Errorf("%s entry %d: response.outcome %v, want the information first and dom-6 listed %v", kind, i, toJSON(o), wantDom6)
			}
			if es[i]["resource"] != nil {
				t.Errorf("%s entry %d: the resource is returned despite return=OperationOutcome", kind, i)
			}
		}
	}
}
