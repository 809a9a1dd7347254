package patch

import (
	"errors"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

const patient = `{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01"}`

func parse(t testing.TB, s string) *fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON([]byte(s), fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// jsonPatchCases: a document, and the resource it makes or the error it
// gives (its status and a piece of the diagnostics).
var jsonPatchCases = []struct {
	name, doc, want string
	status          int
	mention         string
}{
	{"replace keeps member order", `[{"op":"replace","path":"/active","value":true}]`,
		`{"resourceType":"Patient","id":"p","active":true,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"add appends with -", `[{"op":"add","path":"/name/0/given/-","value":"C"}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B","C"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"add inserts at an index", `[{"op":"add","path":"/name/0/given/0","value":"C"}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["C","A","B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"remove", `[{"op":"remove","path":"/name/0/given/1"},{"op":"remove","path":"/birthDate"}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A"]}]}`, 0, ""},
	{"move", `[{"op":"move","from":"/birthDate","path":"/name/0/period"}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"],"period":"1970-01-01"}]}`, 0, ""},
	{"copy", `[{"op":"copy","from":"/name/0","path":"/name/-"}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]},{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"test ignores member order", `[{"op":"test","path":"/name/0","value":{"given":["A","B"],"family":"Ng"}}]`, patient, 0, ""},
	{"escaped pointer", `[{"op":"add","path":"/a~1b~0c","value":1}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01","a/b~c":1}`, 0, ""},
	{"failed test", `[{"op":"test","path":"/active","value":true}]`, "", 422, "operation 0 (test /active)"},
	{"test compares numbers by value", `[{"op":"add","path":"/n","value":1.50},{"op":"test","path":"/n","value":15e-1}]`,
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01","n":1.50}`, 0, ""},
	{"missing member", `[{"op":"remove","path":"/photo"}]`, "", 422, "operation 0 (remove /photo)"},
	{"index past the end", `[{"op":"add","path":"/name/2","value":{}}]`, "", 422, "past the end"},
	{"leading zero index", `[{"op":"remove","path":"/name/00"}]`, "", 422, "not an array index"},
	{"into a primitive", `[{"op":"add","path":"/active/x","value":1}]`, "", 422, "operation 0"},
	{"whole resource", `[{"op":"replace","path":"","value":{}}]`, "", 422, "whole resource"},
	{"move into own child", `[{"op":"move","from":"/name","path":"/name/0/x"}]`, "", 400, "own child"},
	{"unknown op", `[{"op":"merge","path":"/a"}]`, "", 400, "operation 0"},
	{"op not a string", `[{"op":1,"path":"/a"}]`, "", 400, `"op"`},
	{"no path", `[{"op":"remove"}]`, "", 400, `"path" is missing`},
	{"no from", `[{"op":"copy","path":"/a"}]`, "", 400, `"from" is missing`},
	{"bad escape", `[{"op":"remove","path":"/a~2"}]`, "", 400, "~"},
	{"no leading slash", `[{"op":"remove","path":"a"}]`, "", 400, "starts with /"},
	{"empty", `[]`, "", 400, "no operations"},
	{"object", `{}`, "", 400, "array"},
	{"operation not an object", `[1]`, "", 400, "operation 0"},
}

func TestJSONPatch(t *testing.T) {
	for _, tc := range jsonPatchCases {
		t.Run(tc.name, func(t *testing.T) {
			res := parse(t, patient)
			p, err := ParseJSONPatch([]byte(tc.doc), fhir.DefaultLimits)
			if err == nil {
				err = p.Apply(res)
			}
			checkOutcome(t, err, tc.status, tc.mention)
			if err == nil && string(res.Encode()) != tc.want {
				t.Errorf("got  %s\nwant %s", res.Encode(), tc.want)
			}
		})
	}
}

func checkOutcome(t *testing.T, err error, status int, mention string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v, want a *fhir.Error with status %d", err, status)
	}
	if got := fhir.StatusOf(fe); got != status {
		t.Errorf("status %d, want %d: %v", got, status, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("error %q does not mention %q", err, mention)
	}
}

func op(parts string) string {
	return `{"name":"operation","part":[` + parts + `]}`
}

func params(ops ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`
}

var fhirPathPatchCases = []struct {
	name, doc, want string
	status          int
	mention         string
}{
	{"replace", params(op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":true}`)),
		`{"resourceType":"Patient","id":"p","active":true,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"add a repeating element makes a list", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},{"name":"value","valueContactPoint":{"system":"phone","value":"1"}}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01","telecom":[{"system":"phone","value":"1"}]}`, 0, ""},
	{"add to a list appends", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name[0]"},{"name":"name","valueString":"given"},{"name":"value","valueString":"C"}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B","C"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"add a choice takes the value's type", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueDateTime":"2020"}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01","deceasedDateTime":"2020"}`, 0, ""},
	{"add from parts", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"name","part":[{"name":"family","valueString":"Ko"}]},{"name":"telecom","part":[{"name":"value","valueString":"2"}]}]}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","B"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Ko"},"telecom":[{"value":"2"}]}]}`, 0, ""},
	{"insert", params(op(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.given"},{"name":"index","valueInteger":1},{"name":"value","valueString":"X"}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["A","X","B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"move", params(op(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["B","A"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"delete the last of a list drops it", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name"}`)),
		`{"resourceType":"Patient","id":"p","active":false,"birthDate":"1970-01-01"}`, 0, ""},
	{"delete nothing", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.photo"}`)), patient, 0, ""},
	{"delete by where", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given.where($this = 'A')"}`)),
		`{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"Ng","given":["B"]}],"birthDate":"1970-01-01"}`, 0, ""},
	{"replace selects two", params(op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.given"},{"name":"value","valueString":"Q"}`)), "", 422, "selects 2 elements"},
	{"computed value", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"1 + 1"}`)), "", 422, "operation 0"},
	{"add existing", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"active"},{"name":"value","valueBoolean":true}`)), "", 422, "use replace"},
	{"insert past the end", params(op(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.given"},{"name":"index","valueInteger":3},{"name":"value","valueString":"X"}`)), "", 422, "past the end"},
	{"delete the resource", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient"}`)), "", 422, "whole resource"},
	{"second operation named", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.photo"}`), op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.photo"},{"name":"value","valueString":"x"}`)), "", 422, "operation 1 (replace Patient.photo)"},
	{"unknown type", params(op(`{"name":"type","valueCode":"upsert"},{"name":"path","valueString":"Patient"}`)), "", 400, "upsert"},
	{"no path", params(op(`{"name":"type","valueCode":"delete"}`)), "", 400, `"path" is missing`},
	{"bad path", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.("}`)), "", 400, "not a FHIRPath expression"},
	{"add without name", params(op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"value","valueString":"x"}`)), "", 400, "needs a name"},
	{"unknown part", params(op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient"},{"name":"where","valueString":"x"}`)), "", 400, "unknown part"},
	{"part twice", params(op(`{"name":"type","valueCode":"delete"},{"name":"type","valueCode":"delete"}`)), "", 400, "twice"},
	{"not an operation", params(`{"name":"op","valueString":"x"}`), "", 400, "operation 0"},
	{"no operations", `{"resourceType":"Parameters"}`, "", 400, "no operations"},
}

func TestFHIRPathPatch(t *testing.T) {
	for _, tc := range fhirPathPatchCases {
		t.Run(tc.name, func(t *testing.T) {
			res := parse(t, patient)
			p, err := ParseFHIRPathPatch(parse(t, tc.doc))
			if err == nil {
				err = p.Apply(res)
			}
			checkOutcome(t, err, tc.status, tc.mention)
			if err == nil && string(res.Encode()) != tc.want {
				t.Errorf("got  %s\nwant %s", res.Encode(), tc.want)
			}
		})
	}
}

// FuzzJSONPatch: any document parses or is refused with a *fhir.Error;
// applying a parsed one never panics and fails only with a *fhir.Error.
func FuzzJSONPatch(f *testing.F) {
	for _, tc := range jsonPatchCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParseJSONPatch(doc, fhir.DefaultLimits)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("parse error is not a *fhir.Error: %v", err)
			}
			return
		}
		res := parse(t, patient)
		if err := p.Apply(res); err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("apply error is not a *fhir.Error: %v", err)
			}
			return
		}
		if _, err := fhir.ParseJSON(res.Encode(), fhir.StoredLimits); err != nil {
			t.Fatalf("the patched document does not parse again: %v\n%s", err, res.Encode())
		}
	})
}

// FuzzFHIRPathPatch: as FuzzJSONPatch, for Parameters documents.
func FuzzFHIRPathPatch(f *testing.F) {
	for _, tc := range fhirPathPatchCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		v, err := fhir.ParseJSON(doc, fhir.DefaultLimits)
		if err != nil || v.Kind != fhir.KindObject {
			return
		}
		p, err := ParseFHIRPathPatch(v)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("parse error is not a *fhir.Error: %v", err)
			}
			return
		}
		res := parse(t, patient)
		if err := p.Apply(res); err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("apply error is not a *fhir.Error: %v", err)
			}
		}
	})
}
