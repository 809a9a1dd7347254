package server_test

import (
	"net/http"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// TestInvalidResourcesRefused posts every case of the shared invalid-resource
// table over HTTP, by create and by update: each gets its 400/422 and an
// OperationOutcome whose expression names the path, and nothing is stored.
func TestInvalidResourcesRefused(t *testing.T) {
	cases := fhirtest.InvalidResources()
	if len(cases) < 40 {
		t.Fatalf("the invalid-resource table has %d cases, want at least 40", len(cases))
	}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			st := &countingStore{Store: be.open(t)}
			srv := newTestServer(t, st)
			for _, tc := range cases {
				r := srv.do(http.MethodPost, "/"+tc.Type, tc.Body)
				issues := assertOutcome(t, r, tc.Status)
				if tc.Expression != "" && !mentions(issues, tc.Expression) {
					t.Errorf("%s: no issue expression contains %q: %.600s", tc.Name, tc.Expression, r.body)
				}
				// The same body as an update (update-as-create) is refused too.
				r = srv.do(http.MethodPut, "/"+tc.Type+"/invalid-case", tc.Body)
				if r.status < 400 || r.status >= 500 {
					t.Errorf("%s: PUT status %d, want a 4xx", tc.Name, r.status)
				}
			}
			if n := st.committed.Load(); n != 0 {
				t.Errorf("%d versions were stored from invalid input, want 0", n)
			}
			if r := srv.do(http.MethodGet, "/Patient/invalid-case", nil); r.status != http.StatusNotFound {
				t.Errorf("GET after refused PUT: status %d, want 404", r.status)
			}
		})
	}
}
