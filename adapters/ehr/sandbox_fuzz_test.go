package ehr

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCapabilityFilter: whatever the method, path, header and body, the
// filter either passes the request on or answers with an
// OperationOutcome (405, or 400/413 for a body it cannot read); it never
// panics.
func FuzzCapabilityFilter(f *testing.F) {
	f.Add("POST", "/", "", bundleJSON("batch", postEntry("Observation", observationJSON), postEntry("CarePlan", carePlanJSON)))
	f.Add("POST", "/", "", bundleJSON("transaction", `{"request":{"method":"PUT","url":"QuestionnaireResponse/x?a=b"}}`))
	f.Add("POST", "/", "", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"get","url":"%zz"}},{"request":null},{}]}`)
	f.Add("PUT", "/QuestionnaireResponse/qr1", "", qrJSON("qr1"))
	f.Add("POST", "/Observation", "identifier=a|b", observationJSON)
	f.Add("GET", "/Patient/1/_history/2", "", "")
	f.Add("DELETE", "/Patient?identifier=a|b", "", "")
	f.Add("GET", "//$x/", "", "")
	f.Add("HEAD", "/metadata", "", "")
	caps := mustReadCapabilities(f, ehrFixture(f, oracleFile))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Count(r.URL.Path, "/") == 2 {
			w.WriteHeader(http.StatusNotFound) // the update-as-create probe: nothing exists
			return
		}
		w.WriteHeader(299)
	})
	h := CapabilityFilter(caps)(next)
	f.Fuzz(func(t *testing.T, method, path, ifNoneExist, body string) {
		req, err := http.NewRequest(method, "http://sandbox.test/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path = path
		req.Header.Set("If-None-Exist", ifNoneExist)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 299:
		case http.StatusOK:
			if strings.Trim(path, "/") != "metadata" {
				t.Fatalf("200 for %s %q", method, path)
			}
		case http.StatusMethodNotAllowed, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !strings.Contains(rec.Body.String(), `"OperationOutcome"`) {
				t.Fatalf("%d without an OperationOutcome: %s", rec.Code, rec.Body)
			}
		case http.StatusNotFound:
			if req.Method != http.MethodGet { // "" is GET to net/http
				t.Fatalf("404 for %s %q", method, path)
			}
		default:
			t.Fatalf("status %d for %s %q", rec.Code, method, path)
		}
	})
}
