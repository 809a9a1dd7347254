package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `kapbridge demo` to its ready point: the course synced to
// the Epic sandbox in representations Epic accepts, the process notes
// held back, the prescriber's vitals brought back into the gateway (the
// Observation it wrote answers on the gateway's FHIR API with the EHR's
// values), both servers answering at the printed URLs; then stops it.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	go func() {
		err := run(ctx, []string{"demo", "-dir", dir, "-listen", "127.0.0.1:0", "-ehr-listen", "127.0.0.1:0",
			"-course", filepath.Join(root, "testdata", "records", "course-iv.ndjson")}, os.Getenv, strings.NewReader(""), pw, io.Discard)
		pw.CloseWithError(err)
		done <- err
	}()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	ready := false
	deadline := time.AfterFunc(2*time.Minute, func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == demoReady {
			ready = true
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, pr)
	text := out.String()
	if !ready {
		cancel()
		t.Fatalf("the demo did not get ready (%v):\n%s", <-done, text)
	}
	for _, want := range []string{
		"CarePlan as DocumentReference (CarePlan is not writable there)",
		"MedicationAdministration as Observation (MedicationAdministration is not writable there)",
		"Observation as itself",
		"held back by the privacy gate",
		"Patient: linked to the EHR's Patient/",
		"7. the prescriber records a blood pressure of 142/88",
		" applied: observation/ehr-",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "FAILED") {
		t.Errorf("a delivery failed:\n%s", text)
	}
	// The Observation the inbound sync wrote answers on the gateway with
	// the EHR's values.
	m := regexp.MustCompile(`wrote (http://127\.0\.0\.1:\d+/Observation/[^/\s]+)/\d+`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no gateway Observation written from the EHR's vitals:\n%s", text)
	}
	// The gateway's API needs the token the demo printed, and refuses
	// without it.
	tok := regexp.MustCompile(`export KAPBRIDGE_TOKEN=(\S+)`).FindStringSubmatch(text)
	if tok == nil {
		t.Fatalf("no gateway token printed:\n%s", text)
	}
	if r, err := http.Get(m[1]); err != nil || r.StatusCode != 401 {
		t.Fatalf("GET %s without a token: %v %v", m[1], err, r)
	}
	req, _ := http.NewRequest("GET", m[1], nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "142") || !strings.Contains(string(body), "88") {
		t.Errorf("GET %s: %d %s", m[1], resp.StatusCode, body)
	}
	// The EHR answers at its URL (its statement is Epic's).
	e := regexp.MustCompile(`EHR sandbox:\s+(http://127\.0\.0\.1:\d+)/metadata`).FindStringSubmatch(text)
	if e == nil {
		t.Fatalf("no EHR URL printed")
	}
	resp, err = http.Get(e[1] + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	var cs struct {
		Software struct{ Name string } `json:"software"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&cs)
	resp.Body.Close()
	if cs.Software.Name != "Epic" {
		t.Errorf("the EHR's statement is %q's, want Epic's", cs.Software.Name)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the demo ended with %v", err)
	}
}
