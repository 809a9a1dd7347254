package ehr

import (
	"net/http"
	"strings"
	"testing"
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
