package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/mappings/ig"
)

// TestServeConformance: the real program serves the project's artifacts
// read-only and holds writes that claim its profiles to them.
func TestServeConformance(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"KAPBRIDGE_STORE": filepath.Join(t.TempDir(), "kap.db")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-auth", "off", "-listen", addr}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(25 * time.Second):
			t.Error("run did not stop")
		}
	}()
	base := "http://" + addr
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, _ := call("GET", "/metadata", ""); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no /metadata after 20 s")
		}
	}

	for _, u := range []string{ig.ProfileCarePlan, ig.ProfileSessionObservation, ig.ProfileScreeningResponse} {
		if st, b := call("GET", "/StructureDefinition?url="+url.QueryEscape(u), ""); st != 200 || len(b["entry"].([]any)) != 1 {
			t.Errorf("StructureDefinition?url=%s: %d %v", u, st, b["total"])
		}
	}
	if st, b := call("GET", "/Questionnaire?url="+url.QueryEscape(ig.QuestionnairePHQ9), ""); st != 200 || len(b["entry"].([]any)) != 1 {
		t.Errorf("Questionnaire?url=phq-9: %d", st)
	}
	if st, b := call("GET", "/CodeSystem?_tag="+url.QueryEscape(ig.TagSystem+"|"+ig.TagCode)+"&_count=100", ""); st != 200 || len(b["entry"].([]any)) < 9 {
		t.Errorf("CodeSystem?_tag=: %d", st)
	}
	st, cs := call("GET", "/CodeSystem/kap-session-type", "")
	if st != 200 || cs["url"] != ig.Base+"/CodeSystem/kap-session-type" {
		t.Errorf("read CodeSystem/kap-session-type: %d %v", st, cs["url"])
	}
	if st, _ := call("DELETE", "/CodeSystem/kap-session-type", ""); st != 403 {
		t.Errorf("DELETE of an artifact: %d, want 403", st)
	}
	_, meta := call("GET", "/metadata", "")
	if !strings.Contains(mustJSON(meta), ig.ProfileCarePlan) {
		t.Error("CapabilityStatement does not list kap-careplan")
	}

	carePlan := `{"resourceType":"CarePlan","meta":{"profile":["` + ig.ProfileCarePlan + `"],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
		"identifier":[{"system":"http://kapbridge.org/fhir/NamingSystem/practice/p1/course","value":"c1"}],"status":"active","intent":"plan",
		"category":[{"coding":[{"system":"http://kapbridge.org/fhir/CodeSystem/kap-careplan-category","code":"kap-course"}]}],"subject":{"reference":"Patient/p1"},
		"activity":[{"detail":{"code":{"coding":[{"system":"http://kapbridge.org/fhir/CodeSystem/kap-session-type","code":"dosing"}]},"status":"scheduled"}}]}`
	if st, b := call("POST", "/CarePlan", carePlan); st != 201 {
		t.Errorf("valid KAP CarePlan: %d %v", st, b)
	}
	if st, b := call("POST", "/CarePlan", strings.Replace(carePlan, `"code":"dosing"`, `"code":"party"`, 1)); st != 422 {
		t.Errorf("CarePlan with an unknown session type: %d %v", st, b)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
