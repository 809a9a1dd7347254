package server_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestTransactionPatchReferences: urn:uuid references inside the values
// of a transaction's PATCH entries (a FHIRPath Patch valueReference, a
// FHIRPath Patch valueString at a .reference path, a JSON Patch value
// object and a JSON Patch string at /.../reference) are rewritten to the
// ids the server gives the entries they name, as references in entry
// resources are; a conditional reference in a patch value resolves too.
func TestTransactionPatchReferences(t *testing.T) {
	srv := newTestServer(t, newMemStore(t))
	create := func(body string) string {
		t.Helper()
		r := srv.do("POST", "/Observation", []byte(body))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		return m["id"].(string)
	}
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`
	o1, o2, o3, o4 := create(obs), create(obs), create(obs), create(obs)
	if r := srv.do("POST", "/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:t","value":"known"}]}`)); r.status != 201 {
		t.Fatalf("patient: %d %s", r.status, r.body)
	}
	jsonPatch := func(ops string) string {
		return `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(ops)) + `"}`
	}
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	{"fullUrl":"urn:uuid:7f3d4c1e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},
	{"resource":{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation"},
		{"name":"name","valueString":"subject"},{"name":"value","valueReference":{"reference":"urn:uuid:7f3d4c1e-0000-4000-8000-000000000001"}}]}]},
	 "request":{"method":"PATCH","url":"Observation/` + o1 + `"}},
	{"resource":` + jsonPatch(`[{"op":"add","path":"/subject","value":{"reference":"urn:uuid:7f3d4c1e-0000-4000-8000-000000000001"}}]`) + `,
	 "request":{"method":"PATCH","url":"Observation/` + o2 + `"}},
	{"resource":` + jsonPatch(`[{"op":"add","path":"/subject","value":{"display":"p"}},{"op":"add","path":"/subject/reference","value":"urn:uuid:7f3d4c1e-0000-4000-8000-000000000001"}]`) + `,
	 "request":{"method":"PATCH","url":"Observation/` + o3 + `"}},
	{"resource":` + jsonPatch(`[{"op":"add","path":"/subject","value":{"reference":"Patient?identifier=urn:t|known"}}]`) + `,
	 "request":{"method":"PATCH","url":"Observation/` + o4 + `"}}]}`
	r := srv.do("POST", "/", []byte(bundle))
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var resp struct {
		Entry []struct {
			Response struct{ Location string }
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Entry) != 5 {
		t.Fatalf("response: %v %s", err, r.body)
	}
	patient, _, _ := strings.Cut(strings.TrimPrefix(resp.Entry[0].Response.Location, srv.URL+"/"), "/_history")
	if !strings.HasPrefix(patient, "Patient/") {
		t.Fatalf("the created Patient's location: %q", resp.Entry[0].Response.Location)
	}
	subject := func(id string) string {
		r := srv.do("GET", "/Observation/"+id, nil)
		var m struct{ Subject struct{ Reference string } }
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		return m.Subject.Reference
	}
	for i, id := range []string{o1, o2, o3} {
		if got := subject(id); got != patient {
			t.Errorf("patch entry %d: subject %q, want %q", i+1, got, patient)
		}
	}
	if got := subject(o4); !strings.HasPrefix(got, "Patient/") || got == patient || strings.Contains(got, "?") {
		t.Errorf("the conditional reference in a patch value: subject %q, want the known Patient", got)
	}
}
