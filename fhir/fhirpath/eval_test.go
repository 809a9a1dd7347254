package fhirpath

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// The engine's own tests: what the official suite does not reach (FHIR
// functions, primitive extensions, references, narratives, options, the
// cache), on resources written here.

const observationJSON = `{
  "resourceType": "Observation",
  "id": "bp",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Blood pressure <b>120/80</b></p></div>"},
  "contained": [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Rivera"}]}],
  "status": "final",
  "_status": {"extension": [{"url": "http://example.org/why", "valueString": "checked"}]},
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Blood pressure"},
  "subject": {"reference": "#p1"},
  "effectiveDateTime": "2026-03-01T10:15:00+01:00",
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
     "valueQuantity": {"value": 120.0, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
     "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
  ]
}`

const patientJSON = `{
  "resourceType": "Patient",
  "id": "x",
  "active": true,
  "name": [{"given": ["Ann", null, "Bea"], "_given": [null, {"extension": [{"url": "http://example.org/absent", "valueCode": "masked"}]}, {"id": "g3"}]}],
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "multipleBirthInteger": 2
}`

func mustParse(t testing.TB, s string) *fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON([]byte(s), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// evalString runs expr and writes the result as "type value" items.
func evalString(t *testing.T, res *fhir.Value, expr string, env *Env) (string, error) {
	t.Helper()
	out, err := Evaluate(res, expr, env)
	if err != nil {
		return "", err
	}
	return show(out), nil
}

func TestEvaluate(t *testing.T) {
	obs := mustParse(t, observationJSON)
	pat := mustParse(t, patientJSON)
	tests := []struct {
		res  *fhir.Value
		expr string
		want string
	}{
		// invariants as R4 writes them
		{obs, "dataAbsentReason.empty() or value.empty()", "[System.Boolean true]"},
		{obs, "hasValue() or (children().count() > id.count())", "[System.Boolean true]"},
		{obs, "component.all(value.exists())", "[System.Boolean true]"},
		{obs, "text.div.htmlChecks()", "[System.Boolean true]"},
		// choice elements and quantities
		{obs, "component.value.ofType(Quantity).value", "[FHIR.decimal 120.0, FHIR.decimal 80]"},
		{obs, "component.value.unit", "[FHIR.string mmHg, FHIR.string mmHg]"},
		{obs, "component[0].value > 15.9 'kPa'", "[System.Boolean true]"},
		{obs, "component[1].value = 80 'mm[Hg]'", "[System.Boolean true]"},
		{obs, "component.value.sum()", "ERR"},
		{obs, "effective.is(dateTime)", "[System.Boolean true]"},
		{obs, "effective > @2026-03-01T09:00:00Z", "[System.Boolean true]"},
		{obs, "effective < @2026-03-01T09:30:00Z", "[System.Boolean true]"},
		{obs, "effective = @2026-03-01", "[]"},
		// primitive extensions
		{obs, "status.extension('http://example.org/why').value", "[FHIR.string checked]"},
		{obs, "status.hasValue()", "[System.Boolean true]"},
		{obs, "status.getValue()", "[System.String final]"},
		{pat, "birthDate.extension(%`ext-patient-birthTime`).value", "[FHIR.dateTime 1974-12-25T14:35:45-05:00]"},
		{pat, "name.given", "[FHIR.string Ann, FHIR.string , FHIR.string Bea]"},
		{pat, "name.given.select($this.hasValue())", "[System.Boolean true, System.Boolean false, System.Boolean true]"},
		{pat, "name.given[1].extension.value", "[FHIR.code masked]"},
		{pat, "name.given.id", "[FHIR.string g3]"},
		{pat, "name.given.where(hasValue()).count()", "[System.Integer 2]"},
		{pat, "deceased.ofType(boolean)", "[FHIR.boolean false]"},
		{pat, "multipleBirth + 1", "[System.Integer 3]"},
		{pat, "birthDate + 1 year", "[System.Date 1975-12-25]"},
		// references
		{obs, "subject.resolve().name.family", "[FHIR.string Rivera]"},
		{obs, "subject.resolve() is Patient", "[System.Boolean true]"},
		{obs, "%resource.id", "[FHIR.id bp]"},
		{obs, "%rootResource.id", "[FHIR.id bp]"},
		{obs, "%context.id", "[FHIR.id bp]"},
		// types
		{obs, "type().name", "[System.String Observation]"},
		{obs, "component.type().name", "[System.String BackboneElement, System.String BackboneElement]"},
		{obs, "Observation.is(DomainResource) and is(Resource) and is(FHIR.Observation)", "[System.Boolean true]"},
		{obs, "contained.ofType(Patient).id", "[FHIR.id p1]"},
		{obs, "descendants().ofType(Coding).code", "[FHIR.code vital-signs, FHIR.code 85354-9, FHIR.code 8480-6, FHIR.code 8462-4]"},
		// decimals stay exact
		{nil, "0.1 + 0.2 = 0.3", "[System.Boolean true]"},
		{nil, "(0.1 + 0.2).toString()", "[System.String 0.3]"},
		{nil, "1.50.toString()", "[System.String 1.50]"},
		{nil, "(10 / 4).toString()", "[System.String 2.5]"},
		{nil, "(1 / 3).toString()", "[System.String 0.33333333]"},
		// quantities and units
		{nil, "1 'kg' = 1000 'g'", "[System.Boolean true]"},
		{nil, "60 'min' = 1 'h'", "[System.Boolean true]"},
		{nil, "1 'a' = 12 'mo'", "[System.Boolean true]"},
		{nil, "1 year = 12 months", "[System.Boolean true]"},
		{nil, "1 'a' = 1 year", "[]"},
		{nil, "2 weeks = 14 'd'", "[System.Boolean true]"},
		{nil, "(5 'mg' + 2 'g').toString()", "[System.String 2005 'mg']"},
		{nil, "(70 'kg' / 2 'm2').toString()", "[System.String 35000 'g/m2']"},
		{nil, "3 'mg'.toQuantity('g').toString()", "[System.String 0.003 'g']"},
		{nil, "1 'm' = 1 'g'", "[]"},
		{nil, "1 'mg' < 1 's'", "[]"},
		// dates
		{nil, "@2012-01-31 + 1 month", "[System.Date 2012-02-29]"},
		{nil, "@2026-03-01T10:00:00Z - 90 minutes", "[System.DateTime 2026-03-01T08:30:00Z]"},
		{nil, "@T23:30 + 1 hour", "[System.Time 00:30]"},
		{nil, "@2014 < @2014-06", "[]"},
		{nil, "@2014-01 < @2014-06-01", "[System.Boolean true]"},
		// variables
		{nil, "'\\uD83D\\uDE00 \\u00e9'.length()", "[System.Integer 3]"},
		{nil, "%ucum", "[System.String http://unitsofmeasure.org]"},
		{nil, "%`vs-administrative-gender`", "[System.String http://hl7.org/fhir/ValueSet/administrative-gender]"},
	}
	for _, tt := range tests {
		got, err := evalString(t, tt.res, tt.expr, nil)
		if err != nil {
			got = "ERR"
			if tt.want != "ERR" {
				t.Errorf("%s: %v", tt.expr, err)
				continue
			}
		}
		if got != tt.want {
			t.Errorf("%s\n\tgot  %s\n\twant %s", tt.expr, got, tt.want)
		}
	}
}

// TestSuiteGaps covers, on resources written here, what the suite's tests
// with missing or differing inputs check (see notSupported).
func TestSuiteGaps(t *testing.T) {
	obs := mustParse(t, `{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
	  "extension": [{"url": "http://example.com/fhir/StructureDefinition/patient-age",
	    "valueAge": {"value": 41, "system": "http://unitsofmeasure.org", "code": "a"}}]}`)
	params := mustParse(t, `{"resourceType": "Parameters", "parameter": [
	  {"name": "a", "valueString": "x"}, {"name": "b", "valueInteger": 5},
	  {"name": "c", "valueUuid": "urn:uuid:0e2a5a3e-6a83-4b4e-9e6f-3b5a1f2c3d4e"}, {"name": "d", "valueDecimal": 1.5}]}`)
	period := mustParse(t, `{"resourceType": "Patient", "identifier": [
	  {"period": {"start": "2010-01-01T10:00:00+10:00", "end": "2010-01-01"}}]}`)
	const age = "Observation.extension('http://example.com/fhir/StructureDefinition/patient-age').value"
	for _, tt := range []struct {
		res        *fhir.Value
		expr, want string
	}{
		{obs, age + " is Age", "[System.Boolean true]"},
		{obs, age + " is Quantity", "[System.Boolean true]"},
		{obs, age + " is Duration", "[System.Boolean false]"},
		{obs, age + " > 40 'a'", "[System.Boolean true]"},
		{params, "Parameters.parameter[0].value.is(FHIR.string)", "[System.Boolean true]"},
		{params, "Parameters.parameter[1].value.is(FHIR.integer)", "[System.Boolean true]"},
		{params, "Parameters.parameter[2].value.is(FHIR.uuid)", "[System.Boolean true]"},
		{params, "Parameters.parameter[2].value.is(FHIR.uri)", "[System.Boolean true]"},
		{params, "Parameters.parameter[3].value.is(FHIR.decimal)", "[System.Boolean true]"},
		{period, "Patient.identifier.period.all(start.hasValue().not() or end.hasValue().not() or (start <= end))", "[System.Boolean false]"},
		{period, "Patient.identifier.period.all(start.empty() or end.empty() or (start.lowBoundary() < end.highBoundary()))", "[System.Boolean true]"},
	} {
		got, err := evalString(t, tt.res, tt.expr, nil)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %s %v, want %s", tt.expr, got, err, tt.want)
		}
	}
}

func TestErrorsHavePositions(t *testing.T) {
	tests := []struct {
		expr string
		kind ErrorKind
		pos  int
	}{
		{"2 + 2 /", Syntax, 7},
		{"name.where(given = 'x'", Syntax, 22},
		{"'abc", Syntax, 0},
		{"/* open", Syntax, 0},
		{"@2015-13-01", Syntax, 0},
		{"name.", Syntax, 5},
		{"1 +* 2", Syntax, 3},
		{"a $that", Syntax, 2},
		{"name.nosuch()", Semantic, 5},
		{"name.first(1)", Semantic, 5},
		{"where()", Semantic, 0},
	}
	for _, tt := range tests {
		_, err := Compile(tt.expr)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: got %v, want a %s error", tt.expr, err, tt.kind)
			continue
		}
		if e.Kind != tt.kind || e.Pos != tt.pos {
			t.Errorf("%q: got %s at %d (%v), want %s at %d", tt.expr, e.Kind, e.Pos, e, tt.kind, tt.pos)
		}
	}
	// an execution error is placed on the call that failed
	_, err := Evaluate(nil, "(1 | 2).single()", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != Execution || e.Pos != 8 {
		t.Errorf("single() on two items: %v", err)
	}
}

func TestNotSupported(t *testing.T) {
	obs := mustParse(t, observationJSON)
	for _, expr := range []string{
		"code.coding.memberOf('http://hl7.org/fhir/ValueSet/observation-vitalsignresult')",
		"code.coding.first().subsumes(code.coding.last())",
		"conformsTo('http://hl7.org/fhir/StructureDefinition/vitalsigns')",
	} {
		_, err := Evaluate(obs, expr, nil)
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s: got %v, want ErrNotSupported", expr, err)
		}
	}
	// not reached, not an error: an invariant may name them in a branch
	if _, err := Evaluate(obs, "{}.memberOf('x')", nil); err != nil {
		t.Errorf("memberOf on empty input: %v", err)
	}
}

func TestTypedChoiceNames(t *testing.T) {
	obs := mustParse(t, observationJSON)
	if _, err := Evaluate(obs, "component.valueQuantity", nil); err == nil {
		t.Error("valueQuantity: want a semantic error by default")
	}
	e, err := CompileWith("component.valueQuantity.value", Options{TypedChoiceNames: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Evaluate(obs, nil)
	if err != nil || len(out) != 2 {
		t.Errorf("with TypedChoiceNames: %v %v", show(out), err)
	}
}

func TestStrict(t *testing.T) {
	opts := Options{Strict: true, ContextType: "Observation"}
	for _, expr := range []string{
		"Observation.code.coding.code",
		"component.value.ofType(Quantity).unit",
		"contained.name",
		"(value as Quantity).unit",
		"subject.resolve().name",
	} {
		if _, err := CompileWith(expr, opts); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
	for _, expr := range []string{
		"Patient.name",
		"code.codings",
		"(value as Period).unit",
		"component.valueQuantity",
		"children().first()",
		"descendants()[0]",
	} {
		_, err := CompileWith(expr, opts)
		var e *Error
		if !errors.As(err, &e) || e.Kind != Semantic {
			t.Errorf("%s: got %v, want a semantic error", expr, err)
		}
	}
}

func TestNarrativeChecks(t *testing.T) {
	tests := []struct {
		div string
		ok  bool
	}{
		{`<div xmlns="http://www.w3.org/1999/xhtml"><p>ok <a href="http://example.org">link</a></p><img src="#x"/></div>`, true},
		{`<div xmlns="http://www.w3.org/1999/xhtml">a &amp; b &nbsp;</div>`, true},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><a href=" JavaScript:alert(1)">a</a></div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><form>a</form></div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="x"/></div>`, false},
		{`<div>no namespace</div>`, false},
		{`<p xmlns="http://www.w3.org/1999/xhtml">not a div</p>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml">   </div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>`, false},
		{`<div xmlns="http://www.w3.org/1999/xhtml">a</div><div xmlns="http://www.w3.org/1999/xhtml">b</div>`, false},
	}
	for _, tt := range tests {
		err := checkNarrative(tt.div)
		if (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.div, err, tt.ok)
		}
	}
}

func TestResolveInBundle(t *testing.T) {
	bundle := mustParse(t, `{"resourceType": "Bundle", "type": "collection", "entry": [
	  {"fullUrl": "http://example.org/fhir/Patient/1", "resource": {"resourceType": "Patient", "id": "1", "gender": "female"}},
	  {"fullUrl": "urn:uuid:0e2a5a3e-6a83-4b4e-9e6f-3b5a1f2c3d4e", "resource": {"resourceType": "Practitioner", "id": "2"}},
	  {"fullUrl": "http://example.org/fhir/Observation/3", "resource": {"resourceType": "Observation", "id": "3", "status": "final",
	    "code": {"text": "x"}, "subject": {"reference": "Patient/1"},
	    "performer": [{"reference": "urn:uuid:0e2a5a3e-6a83-4b4e-9e6f-3b5a1f2c3d4e"}, {"reference": "Practitioner/404"}]}}]}`)
	obs := bundle.Get("entry").Array[2].Get("resource")
	env := &Env{RootResource: bundle}
	for expr, want := range map[string]string{
		"subject.resolve().gender":          "[FHIR.code female]",
		"performer.resolve().id":            "[FHIR.id 2]",
		"entry.resource.ofType(Patient).id": "",
	} {
		if want == "" {
			continue
		}
		got, err := evalString(t, obs, expr, env)
		if err != nil || got != want {
			t.Errorf("%s: got %s %v, want %s", expr, got, err, want)
		}
	}
	got, err := evalString(t, bundle, "entry.resource.where(resolve() is Patient).count()", nil)
	if err != nil || got != "[System.Integer 0]" {
		t.Errorf("resolve of a resource: %s %v", got, err)
	}
}

func TestEnv(t *testing.T) {
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var traced []string
	env := &Env{
		Now:   func() time.Time { return fixed },
		Vars:  map[string]any{"limit": 3, "who": "Ann", "when": fixed, "ratio": 0.25, "pat": mustParse(t, patientJSON)},
		Trace: func(name string, c Collection) { traced = append(traced, name+"="+show(c)) },
	}
	for expr, want := range map[string]string{
		"today()":                    "[System.Date 2026-03-01]",
		"now()":                      "[System.DateTime 2026-03-01T12:00:00.000+00:00]",
		"%limit + 1":                 "[System.Integer 4]",
		"%who & '!'":                 "[System.String Ann!]",
		"%when = now()":              "[System.Boolean true]",
		"%ratio * 4":                 "[System.Decimal 1.00]",
		"%pat.name.given.first()":    "[FHIR.string Ann]",
		"(1 | 2).trace('n').count()": "[System.Integer 2]",
	} {
		got, err := evalString(t, nil, expr, env)
		if err != nil {
			got = "ERR"
		}
		if got != want {
			t.Errorf("%s: got %s (%v), want %s", expr, got, err, want)
		}
	}
	if len(traced) != 1 || traced[0] != "n=[System.Integer 1, System.Integer 2]" {
		t.Errorf("trace: %q", traced)
	}
	if _, err := Evaluate(nil, "%nosuch", env); err == nil {
		t.Error("an unknown variable must be an error")
	}
}

func TestCompileCache(t *testing.T) {
	a := MustCompile("name.given.first()")
	b := MustCompile("name.given.first()")
	if a != b {
		t.Error("the same text compiled twice gives two expressions")
	}
	s, _ := CompileWith("name.given.first()", Options{Strict: true, ContextType: "Patient"})
	if s == a {
		t.Error("different options share a cache entry")
	}
	// Concurrent compiles and evaluations of one expression (run with -race).
	pat := mustParse(t, patientJSON)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				e := MustCompile("name.given.where(hasValue()).count() = 2 and birthDate < today()")
				ok, err := e.Predicate(pat, nil)
				if err != nil || !ok {
					t.Error(ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPredicate(t *testing.T) {
	pat := mustParse(t, patientJSON)
	for expr, want := range map[string]string{
		"active":        "true",
		"name.empty()":  "false",
		"link.exists()": "false",
		"{}":            "false",
		"name.given":    "error",
		"birthDate":     "error",
	} {
		ok, err := MustCompile(expr).Predicate(pat, nil)
		got := "false"
		switch {
		case err != nil:
			got = "error"
		case ok:
			got = "true"
		}
		if got != want {
			t.Errorf("%s: got %s (%v), want %s", expr, got, err, want)
		}
	}
}

func TestItem(t *testing.T) {
	pat := mustParse(t, patientJSON)
	out, err := Evaluate(pat, "name.first() | active | 1.5 'mg' | @2020-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatal(show(out))
	}
	if out[0].Node() == nil || !strings.HasPrefix(out[0].String(), `{"given"`) || out[0].Type() != "FHIR.HumanName" {
		t.Errorf("complex item: %s %s", out[0].Type(), out[0].String())
	}
	if b, ok := out[1].Bool(); !ok || !b || out[1].Type() != "FHIR.boolean" {
		t.Errorf("boolean item: %v %v", b, ok)
	}
	if out[2].String() != "1.5 'mg'" || out[3].String() != "2020-01" || out[3].Node() != nil {
		t.Errorf("system items: %s %s", out[2], out[3])
	}
}
