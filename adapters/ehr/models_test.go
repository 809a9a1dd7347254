package ehr

import (
	"strings"
	"testing"
)

// outcomeCases seed FuzzParseOperationOutcome too.
var outcomeCases = []struct {
	name, doc string
	strict    bool   // read by the models
	want      string // Text(); "" with wantErr
	wantErr   string
}{
	{"plain", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Observation.status: required","expression":["Observation.status"]}]}`,
		true, "error/invalid: Observation.status: required at Observation.status", ""},
	{"details and location", `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","details":{"coding":[{"system":"urn:epic","code":"59008","display":"Resource type not supported"}]},"location":["/f:Observation"]}]}`,
		true, "warning/processing: Resource type not supported at /f:Observation", ""},
	{"unknown issue code", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"x-vendor-rule","diagnostics":"write refused by a local rule","details":{"text":"Rule 12"}}]}`,
		false, "error/x-vendor-rule: Rule 12: write refused by a local rule", ""},
	{"unknown severity, code a number", `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal-ish","code":7,"diagnostics":"odd"},"not an object"]}`,
		false, "fatal-ish/7: odd", ""},
	{"no issues", `{"resourceType":"OperationOutcome"}`, true, "", ""},
	{"another resource", `{"resourceType":"Bundle","type":"searchset"}`, false, "", "want resourceType OperationOutcome"},
	{"no resourceType", `{"issue":[]}`, false, "", "no resourceType"},
	{"issue not an array", `{"resourceType":"OperationOutcome","issue":{"severity":"error"},"text":{"status":"bogus"}}`, false, "", "not an array"},
	{"not JSON", `<html>`, false, "", "not a JSON object"},
}

func TestParseOperationOutcome(t *testing.T) {
	for _, tc := range outcomeCases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseOperationOutcome([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (o.Model != nil) != tc.strict || (o.Strict == nil) != tc.strict {
				t.Fatalf("strict read: model %v, error %v; want strict %v", o.Model != nil, o.Strict, tc.strict)
			}
			if got := o.Text(); got != tc.want {
				t.Fatalf("Text() = %q, want %q", got, tc.want)
			}
			if s := o.Summary(); strings.Contains(s, "refused") || strings.Contains(s, "required") {
				t.Fatalf("Summary() holds diagnostics: %q", s)
			}
		})
	}
}

func TestParseBundle(t *testing.T) {
	b, err := ParseBundle([]byte(`{"resourceType":"Bundle","type":"searchset","total":1,
		"link":[{"relation":"self","url":"https://e.example/Observation"},{"relation":"next","url":"https://e.example/Observation?page=2"}],
		"entry":[{"fullUrl":"https://e.example/Observation/1","resource":{"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"}},"search":{"mode":"match"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if NextLink(b) != "https://e.example/Observation?page=2" || len(b.Entry) != 1 || !strings.Contains(string(b.Entry[0].Resource), `"id":"1"`) {
		t.Fatalf("%+v", b)
	}
	if _, err := ParseBundle([]byte(`{"resourceType":"OperationOutcome","issue":[]}`)); err == nil {
		t.Fatal("an OperationOutcome read as a Bundle")
	}
	if _, err := ParseBundle([]byte(`{"resourceType":"Bundle","type":"pile"}`)); err == nil || !strings.Contains(err.Error(), "Bundle") {
		t.Fatalf("unknown Bundle.type: %v", err)
	}
}

func FuzzParseOperationOutcome(f *testing.F) {
	for _, tc := range outcomeCases {
		f.Add(tc.doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		o, err := ParseOperationOutcome([]byte(doc))
		if err != nil {
			return
		}
		_ = o.Text()
		if o.Model == nil && o.Strict == nil {
			t.Fatal("neither read strictly nor told why not")
		}
		if o.Model != nil && len(o.Model.Issue) != len(o.Issues) {
			t.Fatalf("%d model issues, %d issues", len(o.Model.Issue), len(o.Issues))
		}
	})
}
