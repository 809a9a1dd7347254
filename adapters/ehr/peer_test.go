package ehr

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
)

// peerURL is the base URL of the third-party FHIR server the sync tests
// run against (testdata/medplum: Medplum's open-source router), which
// .ci/run installs and starts. Outside CI a test without it skips, saying
// so; in CI (CI set) it fails.
func peerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("KAPBRIDGE_TEST_EHR_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KAPBRIDGE_TEST_EHR_URL not set in CI: .ci/run starts the Medplum peer (testdata/medplum) and sets it")
		}
		t.Skip("KAPBRIDGE_TEST_EHR_URL not set: no third-party FHIR peer (.ci/run starts testdata/medplum and sets it)")
	}
	return u
}

// TestPeer: the third-party peer answers as an EHR the connector can work
// with: its statement reads and plans every KAP artifact natively (it
// declares conditional update), and a create and a conditional update go
// through the connector's client without authorization.
func TestPeer(t *testing.T) {
	base := peerURL(t)
	resp, err := http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	stmt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	caps, err := ReadCapabilities(stmt)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.ConditionalUpdate("Observation") || !caps.Allows("CarePlan", InteractionCreate) {
		t.Errorf("the peer's statement: conditional update %v, CarePlan create %v", caps.ConditionalUpdate("Observation"), caps.Allows("CarePlan", InteractionCreate))
	}
	c, err := NewClient(Config{BaseURL: base, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	obs := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"peer check"},"identifier":[{"system":"urn:kapbridge:test","value":"peer-1"}]}`)
	if r, err := c.Do(t.Context(), &Request{Method: http.MethodPut, URL: "Observation?identifier=urn:kapbridge:test|peer-1", Body: obs}); err != nil || r.Status >= 300 {
		t.Fatalf("conditional update on the peer: %v %v", r, err)
	}
	if r, err := c.Do(t.Context(), &Request{Method: http.MethodPut, URL: "Observation?identifier=urn:kapbridge:test|peer-1", Body: obs}); err != nil || r.Status != http.StatusOK {
		t.Fatalf("second conditional update: %v %v", r, err)
	}
}
