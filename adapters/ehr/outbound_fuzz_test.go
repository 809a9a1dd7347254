package ehr

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/patch"
)

// FuzzRemoteOf: what an EHR answers a write with (body, Location, ETag)
// never makes the reader panic, and a well-formed Location or ETag gives
// the id and version it names.
func FuzzRemoteOf(f *testing.F) {
	f.Add(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"}}`, "", "")
	f.Add("", "https://ehr.example/fhir/Observation/abc/_history/2", "")
	f.Add("", "Observation/abc", `W/"7"`)
	f.Add("not json", "Observation", `"`)
	f.Add(`{"resourceType":"Patient","id":"p"}`, "/Observation/x/_history", "W/")
	f.Fuzz(func(t *testing.T, body, location, etag string) {
		h := http.Header{}
		h.Set("Location", location)
		h.Set("ETag", etag)
		r := remoteOf(&Response{Body: []byte(body), Header: h}, "Observation")
		if body == "" && strings.HasPrefix(location, "Observation/") && !strings.ContainsAny(location[len("Observation/"):], "/ \t\r\n") && len(location) > len("Observation/") {
			if want := location[len("Observation/"):]; r.id != want {
				t.Errorf("Location %q: id %q, want %q", location, r.id, want)
			}
		}
	})
}

// FuzzJSONPatch: the patch computed between two resources, applied by
// kapbridge's own JSON Patch implementation (the one its FHIR API
// serves PATCH with) to the first, gives the second (as JSON: members
// added go last, and member order means nothing).
func FuzzJSONPatch(f *testing.F) {
	f.Add(`{"resourceType":"Communication","status":"completed","payload":[{"contentString":"x"}],"note":[{"text":"a"}]}`,
		`{"resourceType":"Communication","status":"completed","payload":[{"contentString":"y"}],"priority":"urgent"}`)
	f.Add(`{"resourceType":"Encounter","a/b":{"~":[1,2,{"x":null}]}}`, `{"resourceType":"Encounter","a/b":{"~":[1,{"x":true}]},"c":"d"}`)
	f.Add(`{"resourceType":"Flag","x":[]}`, `{"resourceType":"Flag","x":{}}`)
	f.Fuzz(func(t *testing.T, from, to string) {
		a, err1 := fhir.ParseJSON([]byte(from), fhir.StoredLimits)
		b, err2 := fhir.ParseJSON([]byte(to), fhir.StoredLimits)
		if err1 != nil || err2 != nil || a.Kind != fhir.KindObject || b.Kind != fhir.KindObject {
			return
		}
		doc, err := json.Marshal(jsonPatch(a, b))
		if err != nil {
			t.Fatal(err)
		}
		p, err := patch.ParseJSONPatch(doc, fhir.StoredLimits)
		if err != nil {
			t.Fatalf("the patch %s does not parse: %v", doc, err)
		}
		got := cloneValue(a)
		if err := p.Apply(got); err != nil {
			t.Fatalf("the patch %s does not apply to %s: %v", doc, from, err)
		}
		// The same JSON (the order of an object's members means nothing).
		var x, y any
		if json.Unmarshal(got.Encode(), &x) != nil || json.Unmarshal(b.Encode(), &y) != nil || !reflect.DeepEqual(x, y) {
			t.Errorf("patch %s of\n%s\ngave\n%s\nwant\n%s", doc, a.Encode(), got.Encode(), b.Encode())
		}
	})
}
