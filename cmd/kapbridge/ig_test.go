package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// TestServeIG: serve -ig loads US Core 3.1.0 and enforces its profiles on
// writes that claim them; without it the claim is only a warning; a
// guide that does not load stops the start.
func TestServeIG(t *testing.T) {
	usCore := fhirtest.SharedDir(t, "fhir-r4/us-core-3.1.0")
	patient := func(name string) string {
		return `{"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
		"identifier":[{"system":"http://hospital.example.org","value":"1"}],"name":[` + name + `],"gender":"female"}`
	}
	post := func(base, body string) (int, string) {
		resp, err := http.Post(base+"/Patient", "application/fhir+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	with := startServe(t, filepath.Join(t.TempDir(), "ig.db"), []string{"-ig", usCore}, nil)
	if code, body := post(with, patient(`{"text":"Amy Shaw"}`)); code != http.StatusUnprocessableEntity || !strings.Contains(body, "us-core-8") {
		t.Errorf("a name without family or given, with -ig: %d %s", code, body)
	}
	if code, body := post(with, patient(`{"family":"Shaw","given":["Amy"]}`)); code != http.StatusCreated {
		t.Errorf("a valid US Core Patient: %d %s", code, body)
	}
	without := startServe(t, filepath.Join(t.TempDir(), "plain.db"), nil, nil)
	if code, body := post(without, patient(`{"text":"Amy Shaw"}`)); code != http.StatusCreated {
		t.Errorf("without -ig: %d %s", code, body)
	}
	err := run(context.Background(), []string{"serve", "-listen", "127.0.0.1:0", "-ig", filepath.Join(t.TempDir(), "missing")},
		func(k string) string {
			if k == "KAPBRIDGE_STORE" {
				return filepath.Join(t.TempDir(), "x.db")
			}
			return ""
		}, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-ig") {
		t.Errorf("a missing IG: %v", err)
	}
}
