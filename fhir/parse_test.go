package fhir_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

func TestParseJSONValues(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[true,false,null],"c":"x"}`, `{"b":1,"a":[true,false,null],"c":"x"}`},
		{"\xEF\xBB\xBF {\"a\" : 1.50 }\n", `{"a":1.50}`},
		{`-0.0e+10`, `-0.0e+10`},
		{`"\u00e9\ud83d\ude00\n\"\\\/"`, `"é😀\n\"\\/"`},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`"<&>"`, `"\u003c\u0026\u003e"`},
	}
	for _, tt := range tests {
		v, err := fhir.ParseJSON([]byte(tt.in), fhir.DefaultLimits)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := string(v.Encode()); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseJSONOrderAndNumbers(t *testing.T) {
	v, err := fhir.ParseJSON([]byte(`{"z":1,"y":2.50,"x":{"w":-3e2}}`), fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if v.Members[0].Key != "z" || v.Members[1].Key != "y" || v.Get("y").Str != "2.50" || v.Get("x").Get("w").Str != "-3e2" {
		t.Errorf("got %s", v.Encode())
	}
}

func TestParseJSONErrors(t *testing.T) {
	tests := []struct {
		name, in, expr, diag string
		code                 fhir.IssueType
	}{
		{"leading zero", `{"a":01}`, "a", "line 1, column 7", fhir.IssueStructure},
		{"plus", `+1`, "", "unexpected character", fhir.IssueStructure},
		{"bare point", `1.`, "", "decimal point", fhir.IssueStructure},
		{"trailing comma", `{"a":1,}`, "", "member name", fhir.IssueStructure},
		{"trailing array comma", `[1,]`, "[1]", "unexpected character", fhir.IssueStructure},
		{"missing colon", `{"a" 1}`, "a", "':'", fhir.IssueStructure},
		{"second line", "{\n  \"a\": tru\n}", "a", "line 2, column 8", fhir.IssueStructure},
		{"duplicate", `{"a":1,"b":{"c":1,"c":2}}`, "b.c", "duplicate", fhir.IssueStructure},
		{"lone low surrogate", `"\udc00"`, "", "surrogate", fhir.IssueStructure},
		{"short unicode escape", `"\u12"`, "", `\u`, fhir.IssueStructure},
		{"unterminated", `"abc`, "", "unterminated", fhir.IssueStructure},
		{"nothing", ` `, "", "empty", fhir.IssueStructure},
		{"two values", `{} {}`, "", "after", fhir.IssueStructure},
		{"overlong UTF-8", "\"\xc0\xaf\"", "", "UTF-8", fhir.IssueStructure},
		{"surrogate in UTF-8", "\"\xed\xa0\x80\"", "", "UTF-8", fhir.IssueStructure},
		{"deep", strings.Repeat("[", 101) + strings.Repeat("]", 101), strings.Repeat("[0]", 100), "nesting", fhir.IssueTooLong},
		{"long string", `{"a":["` + strings.Repeat("x", 1<<20+1) + `"]}`, "a[0]", "exceeds", fhir.IssueTooLong},
	}
	for _, tt := range tests {
		_, err := fhir.ParseJSON([]byte(tt.in), fhir.DefaultLimits)
		var fe *fhir.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: want *Error, got %v", tt.name, err)
			continue
		}
		if fhir.StatusOf(err) != http.StatusBadRequest || len(fe.Issues) != 1 {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		is := fe.Issues[0]
		got := ""
		if len(is.Expression) > 0 {
			got = is.Expression[0]
		}
		if got != tt.expr || is.Code != tt.code || !strings.Contains(is.Diagnostics, tt.diag) {
			t.Errorf("%s: got %s %q %q, want %s %q ~%q", tt.name, is.Code, got, is.Diagnostics, tt.code, tt.expr, tt.diag)
		}
	}
}

func TestParseJSONLimits(t *testing.T) {
	_, err := fhir.ParseJSON(make([]byte, 101), fhir.Limits{MaxBytes: 100})
	if fhir.StatusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("over MaxBytes: %v", err)
	}
	// base64Binary members are exempt from the string limit, others not.
	lim := fhir.Limits{MaxStringBytes: 8}
	if _, err := fhir.ParseJSON([]byte(`{"data":"QUJDREVGR0hJSktM"}`), lim); err != nil {
		t.Errorf("base64 data: %v", err)
	}
	if _, err := fhir.ParseJSON([]byte(`{"text":"QUJDREVGR0hJSktM"}`), lim); err == nil {
		t.Error("long text accepted")
	}
	// A large object still finds duplicates.
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	b.WriteString(`"kaa":2}`)
	if _, err := fhir.ParseJSON([]byte(b.String()), fhir.DefaultLimits); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate in a large object: %v", err)
	}
}

func TestResourceTypes(t *testing.T) {
	rts := fhir.ResourceTypes()
	if len(rts) != 146 {
		t.Errorf("%d resource types", len(rts))
	}
	for i := 1; i < len(rts); i++ {
		if rts[i-1] >= rts[i] {
			t.Fatalf("not sorted at %s", rts[i])
		}
	}
	for _, n := range []string{"Patient", "Observation", "Bundle", "Parameters", "Binary"} {
		if !fhir.IsResourceType(n) {
			t.Errorf("%s not a resource type", n)
		}
	}
	for _, n := range []string{"Resource", "DomainResource", "HumanName", "string", "", "patient"} {
		if fhir.IsResourceType(n) {
			t.Errorf("%s is a resource type", n)
		}
	}
}
