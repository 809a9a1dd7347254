package fhir_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

func identifiers(n int, each string) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"identifier":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(each)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// limitError asserts err is a 413 too-long *fhir.Error naming the limit,
// its value and where, and returns it.
func limitError(t *testing.T, err error, limit string, value int, expr string) {
	t.Helper()
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want an *fhir.Error, got %v", err)
	}
	if fe.Code != fhir.IssueTooLong || fhir.StatusOf(fe) != http.StatusRequestEntityTooLarge {
		t.Errorf("code %s status %d, want too-long 413", fe.Code, fhir.StatusOf(fe))
	}
	is := fe.Issues[0]
	if want := limit + " = " + strconv.Itoa(value); !strings.Contains(is.Diagnostics, want) || !strings.Contains(is.Diagnostics, "-"+limit) {
		t.Errorf("diagnostics %q do not name %s and its flag", is.Diagnostics, want)
	}
	if len(is.Expression) != 1 || is.Expression[0] != expr {
		t.Errorf("expression %v, want %s", is.Expression, expr)
	}
}

func TestParseJSONArrayAndNodeLimits(t *testing.T) {
	lim := fhir.Limits{MaxArrayElements: 100, MaxNodes: 1000}
	if _, err := fhir.ParseJSON(identifiers(100, `{"value":"1"}`), lim); err != nil {
		t.Fatalf("100 elements, limit 100: %v", err)
	}
	_, err := fhir.ParseJSON(identifiers(101, `{"value":"1"}`), lim)
	limitError(t, err, "max-array-elements", 100, "Observation.identifier")

	// 6 values before the identifiers, 2 in each: the document is refused
	// at the value that crosses the limit, the 501st, identifier[247].
	_, err = fhir.ParseJSON(identifiers(300, `{"value":"1"}`), fhir.Limits{MaxNodes: 500})
	limitError(t, err, "max-nodes", 500, "Observation.identifier[247]")

	// Zero is the default; negative is no limit.
	big := identifiers(fhir.DefaultLimits.MaxArrayElements+1, `{}`)
	_, err = fhir.ParseJSON(big, fhir.Limits{})
	limitError(t, err, "max-array-elements", fhir.DefaultLimits.MaxArrayElements, "Observation.identifier")
	if _, err := fhir.ParseJSON(big, fhir.StoredLimits); err != nil {
		t.Errorf("StoredLimits must not bound arrays: %v", err)
	}
	if _, err := fhir.ParseJSON(big, fhir.Limits{MaxArrayElements: -1}); err != nil {
		t.Errorf("a negative limit is no limit: %v", err)
	}
}

// TestDefaultLimitsHeadroom: every official example the repository
// round-trips parses well inside the default array and node limits (the
// headroom the DefaultLimits comment states).
func TestDefaultLimitsHeadroom(t *testing.T) {
	files, _ := filepath.Glob("../testdata/fhir-r4-examples/*.json")
	if len(files) < 300 {
		t.Fatalf("found %d examples", len(files))
	}
	tight := fhir.Limits{MaxBytes: -1, MaxArrayElements: fhir.DefaultLimits.MaxArrayElements / 7, MaxNodes: fhir.DefaultLimits.MaxNodes * 10 / 47}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fhir.ParseJSON(data, tight); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// TestNULRefused: U+0000 anywhere in a resource, in a value or a member
// name, is a 400 naming the element. PostgreSQL text cannot hold it, and
// both stores must answer alike.
func TestNULRefused(t *testing.T) {
	tests := []struct{ body, expr string }{
		{`{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`, "Patient.name[0].family"},
		{`{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"\u0000"}]}`, "Patient.identifier[0].value"},
		{`{"resourceType":"Patient","name":[{"given":["ok","x\u0000"]}]}`, "Patient.name[0].given[1]"},
		{`{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">\u0000</div>"}}`, "Patient.text.div"},
		{`{"resourceType":"Patient","name":[{"fam\u0000ily":"x"}]}`, "Patient.name[0]"},
		{`{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"p","name":[{"text":"\u0000"}]}]}`, "Patient.contained[0].name[0].text"},
	}
	for _, tt := range tests {
		_, _, err := fhir.ParseResource([]byte(tt.body))
		var fe *fhir.Error
		if !errors.As(err, &fe) || fhir.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("%s: want a 400 *fhir.Error, got %v", tt.body, err)
			continue
		}
		found := false
		for _, is := range fe.Issues {
			if len(is.Expression) > 0 && is.Expression[0] == tt.expr && strings.Contains(is.Diagnostics, "U+0000") {
				found = true
			}
			for _, e := range is.Expression {
				if strings.IndexByte(e, 0) >= 0 {
					t.Errorf("%s: expression echoes the NUL: %q", tt.body, e)
				}
			}
		}
		if !found {
			t.Errorf("%s: no U+0000 issue at %s: %v", tt.body, tt.expr, fe)
		}
	}
}

// TestNULRefusedEverywhere puts U+0000 into every string of every small
// official example: each one must be found, so no element type escapes
// the check (a string the validator never visits would reach the store).
func TestNULRefusedEverywhere(t *testing.T) {
	files, _ := filepath.Glob("../testdata/fhir-r4-examples/*.json")
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		root, err := fhir.ParseJSON(data, fhir.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if len(fhir.Validate(root)) > 0 {
			continue // the invalid examples
		}
		n := poison(root, true)
		if n == 0 || n > 900 {
			continue // keep under the validator's issue bound
		}
		got := 0
		for _, is := range fhir.Validate(root) {
			if strings.Contains(is.Diagnostics, "U+0000") {
				got++
			}
		}
		if got != n {
			t.Errorf("%s: %d strings hold U+0000, %d issues name it", filepath.Base(f), n, got)
		}
		checked++
	}
	if checked < 250 {
		t.Errorf("only %d examples checked", checked)
	}
}

// poison appends U+0000 to every string value under v but resourceType
// (which names the type: an unknown one is its own error) and returns how
// many it changed.
func poison(v *fhir.Value, top bool) int {
	n := 0
	switch v.Kind {
	case fhir.KindString:
		v.Str += "\x00"
		return 1
	case fhir.KindArray:
		for _, x := range v.Array {
			n += poison(x, false)
		}
	case fhir.KindObject:
		for _, m := range v.Members {
			if m.Key == "resourceType" {
				continue
			}
			n += poison(m.Value, false)
		}
	}
	return n
}

func TestCapIssues(t *testing.T) {
	issues := make([]fhir.Issue, 250)
	for i := range issues {
		issues[i] = fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueInvalid, Diagnostics: "bad " + strconv.Itoa(i)}
	}
	if got := fhir.CapIssues(issues[:100], 100); len(got) != 100 || got[99].Omitted != 0 {
		t.Errorf("100 issues, cap 100: %d, last %+v", len(got), got[len(got)-1])
	}
	got := fhir.CapIssues(issues, 100)
	if len(got) != 100 || got[98].Diagnostics != "bad 98" || got[99].Omitted != 151 ||
		!strings.Contains(got[99].Diagnostics, "151 more") || !strings.Contains(got[99].Diagnostics, "max-issues = 100") {
		t.Fatalf("cap 100 of 250: %d issues, last %+v", len(got), got[len(got)-1])
	}
	// Capping a capped list again (a transaction gathers its entries'
	// outcomes) counts every issue once.
	again := fhir.CapIssues(append(append([]fhir.Issue{}, got...), issues[:10]...), 20)
	if len(again) != 20 || again[19].Omitted != 250+10-19 {
		t.Errorf("recapped: %d issues, last %+v", len(again), again[len(again)-1])
	}
}

// TestValidationIssuesBounded: a resource with a bad value in each of many
// elements costs a bounded list of issues, and its OperationOutcome lists
// DefaultMaxIssues of them, the last saying how many more there were.
func TestValidationIssuesBounded(t *testing.T) {
	v, err := fhir.ParseJSON(identifiers(5000, `{}`), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	issues := fhir.Validate(v)
	if len(issues) != 1001 || issues[1000].Omitted != 4000 {
		t.Fatalf("%d issues, last %+v", len(issues), issues[len(issues)-1])
	}
	oo := string(fhir.OperationOutcome(issues))
	if n := strings.Count(oo, `"severity"`); n != fhir.DefaultMaxIssues {
		t.Errorf("OperationOutcome lists %d issues, want %d", n, fhir.DefaultMaxIssues)
	}
	if !strings.Contains(oo, "4901 more issues") {
		t.Errorf("the last issue does not count the rest: %.300s", oo[len(oo)-300:])
	}
}

// largeNarrative is an XHTML table of rows, repeated until the div holds
// at least size bytes: the official examples' narratives are such tables.
func largeNarrative(rows []string, size int) string {
	var b strings.Builder
	b.WriteString(`<div xmlns="http://www.w3.org/1999/xhtml"><table class="codes"><tr><td><b>Code</b></td><td><b>Display</b></td><td><b>Definition</b></td></tr>`)
	for b.Len() < size {
		for _, r := range rows {
			b.WriteString(r)
		}
	}
	b.WriteString(`</table></div>`)
	return b.String()
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// TestLargeOfficialNarratives: CodeSystem-dicom-dcim and
// ValueSet-c80-doc-typecodes, published with narratives of 1.1 and 1.8 MB,
// are accepted under DefaultLimits. ../shared holds them from the core
// package, which leaves the narratives out, so each gets a narrative of
// its published size made of its own concepts, as the examples' tables
// are. The body, nesting and total string limits still hold.
func TestLargeOfficialNarratives(t *testing.T) {
	core := fhirtest.SharedDir(t, "fhir-r4/core")
	for _, tc := range []struct {
		file string
		size int
	}{{"CodeSystem-dicom-dcim.json", 1_100_000}, {"ValueSet-c80-doc-typecodes.json", 1_800_000}} {
		data, err := os.ReadFile(filepath.Join(core, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhir.ParseJSON(data, fhir.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		var walk func(*fhir.Value)
		walk = func(c *fhir.Value) {
			if c == nil || c.Kind != fhir.KindArray {
				return
			}
			for _, x := range c.Array {
				rows = append(rows, "<tr><td>"+xmlText(x.GetString("code"))+"</td><td>"+xmlText(x.GetString("display"))+"</td><td>"+xmlText(x.GetString("definition"))+"</td></tr>")
				walk(x.Get("concept"))
			}
		}
		walk(v.Get("concept"))
		if inc := v.Get("compose").Get("include"); inc != nil {
			for _, i := range inc.Array {
				walk(i.Get("concept"))
			}
		}
		if len(rows) < 100 {
			t.Fatalf("%s: %d concepts", tc.file, len(rows))
		}
		text := fhir.Object()
		text.Set("status", fhir.String("generated"))
		text.Set("div", fhir.String(largeNarrative(rows, tc.size)))
		v.Set("text", text)
		body := v.Encode()
		if _, _, err := fhir.ParseResource(body); err != nil {
			t.Errorf("%s with a %d-byte narrative: %v", tc.file, len(text.GetString("div")), err)
		}
	}
	// Still bounded: the body, all strings together, and a string that is
	// not a narrative.
	huge := `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + strings.Repeat("a", 17<<20) + `</div>"}}`
	if _, _, err := fhir.ParseResource([]byte(huge)); fhir.StatusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("a 17 MB body: %v, want 413", err)
	}
	_, err := fhir.ParseJSON([]byte(huge), fhir.Limits{MaxBytes: 64 << 20})
	limitError(t, err, "max-total-string-bytes", fhir.DefaultLimits.MaxTotalStringBytes, "Patient.text.div")
	long := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("a", 1<<20+1) + `"}]}`
	if _, _, err := fhir.ParseResource([]byte(long)); err == nil {
		t.Error("a 1 MB family name is accepted")
	}
}

// nesting is how deep v nests, as the parser counts: an object or array
// is one level more than its deepest member.
func nesting(v *fhir.Value) int {
	deepest := 0
	switch v.Kind {
	case fhir.KindObject:
		for _, m := range v.Members {
			deepest = max(deepest, nesting(m.Value))
		}
	case fhir.KindArray:
		for _, x := range v.Array {
			deepest = max(deepest, nesting(x))
		}
	default:
		return 0
	}
	return deepest + 1
}

// TestDefaultDepthAcceptsExamples: the default max-depth accepts every
// official R4 example with room to spare; the deepest one parses at
// exactly its depth and is refused one level below, naming the limit (so
// the depth measured here is the parser's).
func TestDefaultDepthAcceptsExamples(t *testing.T) {
	files, err := filepath.Glob("../testdata/fhir-r4-examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("official examples: %d files, %v", len(files), err)
	}
	deepest, which := 0, ""
	var data []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhir.ParseJSON(b, fhir.StoredLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d := nesting(v); d > deepest {
			deepest, which, data = d, filepath.Base(f), b
		}
	}
	t.Logf("deepest official example: %s, %d levels; default max-depth %d", which, deepest, fhir.DefaultLimits.MaxDepth)
	if deepest*4 > fhir.DefaultLimits.MaxDepth {
		t.Errorf("the default max-depth %d leaves less than 4x over the deepest example (%d)", fhir.DefaultLimits.MaxDepth, deepest)
	}
	if deepest != 21 {
		t.Errorf("the deepest example nests %d levels; fhir.DefaultLimits' comment and serve's -max-depth usage say 21", deepest)
	}
	if _, err := fhir.ParseJSON(data, fhir.Limits{MaxDepth: deepest}); err != nil {
		t.Errorf("%s at max-depth %d: %v", which, deepest, err)
	}
	_, err = fhir.ParseJSON(data, fhir.Limits{MaxDepth: deepest - 1})
	if err == nil || !strings.Contains(err.Error(), "max-depth = "+strconv.Itoa(deepest-1)) {
		t.Errorf("%s at max-depth %d: %v, want refused naming max-depth", which, deepest-1, err)
	}
}
