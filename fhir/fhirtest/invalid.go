package fhirtest

import (
	"net/http"
	"strings"
)

// InvalidCase is one resource body a FHIR server must refuse.
type InvalidCase struct {
	Name string
	Body []byte
	// Type is the resource type whose endpoint the body is POSTed to.
	Type string
	// Expression must appear among the expressions of some issue of the
	// OperationOutcome. Empty means the problem has no location (the body
	// is not a JSON object at all, or is too large) and only Status is
	// checked.
	Expression string
	// Status is the HTTP status the server must answer.
	Status int
}

// observation is a minimal valid Observation with the given extra members
// (a JSON fragment starting with a comma, or empty).
func observation(extra string) []byte {
	return []byte(`{"resourceType":"Observation","status":"final","code":{"text":"weight"}` + extra + `}`)
}

func patient(extra string) []byte {
	return []byte(`{"resourceType":"Patient"` + extra + `}`)
}

func medicationRequest(extra string) []byte {
	return []byte(`{"resourceType":"MedicationRequest","status":"active","intent":"order",` +
		`"medicationCodeableConcept":{"text":"ketamine"},"subject":{"reference":"Patient/p1"}` + extra + `}`)
}

// InvalidResources returns bodies that are not valid FHIR R4 JSON, each
// with the element the refusal must name. Large bodies (a 10 MB string,
// 200 levels of nesting, a body over 16 MB) are built on each call.
func InvalidResources() []InvalidCase {
	const bad = http.StatusBadRequest
	cases := []InvalidCase{
		// Unknown elements.
		{"unknown element", patient(`,"foo":1`), "Patient", "Patient.foo", bad},
		{"unknown nested element", patient(`,"name":[{"family":"Ng","foo":"x"}]`), "Patient", "Patient.name[0].foo", bad},
		{"unknown element in a backbone", observation(`,"component":[{"code":{"text":"x"},"bar":true}]`), "Observation", "Observation.component[0].bar", bad},
		{"unknown primitive extension element", patient(`,"_foo":{"id":"x"}`), "Patient", "Patient._foo", bad},

		// Primitive formats.
		{"bad id", patient(`,"id":"a b!"`), "Patient", "Patient.id", bad},
		{"id too long", patient(`,"id":"` + strings.Repeat("a", 65) + `"`), "Patient", "Patient.id", bad},
		{"bad date", patient(`,"birthDate":"2020-13-01"`), "Patient", "Patient.birthDate", bad},
		{"date that does not exist", patient(`,"birthDate":"2021-02-29"`), "Patient", "Patient.birthDate", bad},
		{"date with a time", patient(`,"birthDate":"2020-01-01T10:00:00Z"`), "Patient", "Patient.birthDate", bad},
		{"dateTime with hours but no seconds", observation(`,"effectiveDateTime":"2020-01-01T10:00"`), "Observation", "Observation.effectiveDateTime", bad},
		{"dateTime with a time but no zone", observation(`,"effectiveDateTime":"2020-01-01T10:00:00"`), "Observation", "Observation.effectiveDateTime", bad},
		{"instant without a time", observation(`,"issued":"2020-01-01"`), "Observation", "Observation.issued", bad},
		{"bad time", observation(`,"valueTime":"25:00:00"`), "Observation", "Observation.valueTime", bad},
		{"uri with a space", patient(`,"implicitRules":"http://example.org/a rule"`), "Patient", "Patient.implicitRules", bad},
		{"code with trailing space", patient(`,"language":"en-US "`), "Patient", "Patient.language", bad},
		{"decimal as a string", observation(`,"valueQuantity":{"value":"1.5","unit":"kg"}`), "Observation", "Observation.valueQuantity.value", bad},
		{"decimal with leading zeros", observation(`,"valueQuantity":{"value":007.5}`), "Observation", "Observation.valueQuantity.value", bad},
		{"decimal with an empty exponent", observation(`,"valueQuantity":{"value":1.5e}`), "Observation", "Observation.valueQuantity.value", bad},
		{"decimal with a bare point", observation(`,"valueQuantity":{"value":1.}`), "Observation", "Observation.valueQuantity.value", bad},
		{"integer with a fraction", observation(`,"valueInteger":1.5`), "Observation", "Observation.valueInteger", bad},
		{"integer with an exponent", observation(`,"valueInteger":1e3`), "Observation", "Observation.valueInteger", bad},
		{"integer out of 32-bit range", observation(`,"valueInteger":3000000000`), "Observation", "Observation.valueInteger", bad},
		{"integer as a string", observation(`,"valueInteger":"5"`), "Observation", "Observation.valueInteger", bad},
		{"positiveInt zero", medicationRequest(`,"dosageInstruction":[{"timing":{"repeat":{"frequency":0}}}]`), "MedicationRequest", "MedicationRequest.dosageInstruction[0].timing.repeat.frequency", bad},
		{"unsignedInt negative", patient(`,"photo":[{"contentType":"image/png","size":-1}]`), "Patient", "Patient.photo[0].size", bad},
		{"bad base64Binary", patient(`,"photo":[{"contentType":"image/png","data":"!!!!"}]`), "Patient", "Patient.photo[0].data", bad},
		{"boolean as a string", patient(`,"active":"true"`), "Patient", "Patient.active", bad},
		{"string as a number", patient(`,"name":[{"given":["Ann",7]}]`), "Patient", "Patient.name[0].given[1]", bad},
		{"string where an object is expected", patient(`,"maritalStatus":"M"`), "Patient", "Patient.maritalStatus", bad},
		{"narrative not a div", patient(`,"text":{"status":"generated","div":"hello"}`), "Patient", "Patient.text.div", bad},

		// Cardinality and choices.
		{"missing Observation.status", []byte(`{"resourceType":"Observation","code":{"text":"weight"}}`), "Observation", "Observation.status", bad},
		{"missing Observation.code", []byte(`{"resourceType":"Observation","status":"final"}`), "Observation", "Observation.code", bad},
		{"missing nested required element", observation(`,"component":[{"code":{"text":"a"}},{"valueString":"b"}]`), "Observation", "Observation.component[1].code", bad},
		{"missing Questionnaire.item.linkId nested",
			[]byte(`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"type":"string","text":"Name"}]}]}`),
			"Questionnaire", "Questionnaire.item[0].item[0].linkId", bad},
		{"array where max is 1", patient(`,"gender":["male"]`), "Patient", "Patient.gender", bad},
		{"object array where max is 1", observation(`,"subject":[{"reference":"Patient/p1"}]`), "Observation", "Observation.subject", bad},
		{"scalar where max is *", patient(`,"name":{"family":"Ng"}`), "Patient", "Patient.name", bad},
		{"primitive scalar where max is *", patient(`,"name":[{"given":"Ann"}]`), "Patient", "Patient.name[0].given", bad},
		{"two values of value[x]", observation(`,"valueString":"a","valueQuantity":{"value":1}`), "Observation", "Observation.valueQuantity", bad},
		{"bad required code", []byte(`{"resourceType":"Observation","status":"bogus","code":{"text":"weight"}}`), "Observation", "Observation.status", bad},
		{"bad required code nested", patient(`,"name":[{"use":"bogus"}]`), "Patient", "Patient.name[0].use", bad},

		// resourceType.
		{"unknown resourceType", []byte(`{"resourceType":"Foo","id":"x"}`), "Patient", "resourceType", bad},
		{"abstract resourceType", []byte(`{"resourceType":"DomainResource","id":"x"}`), "Patient", "resourceType", bad},
		{"missing resourceType", []byte(`{"id":"x","name":[{"family":"Ng"}]}`), "Patient", "resourceType", bad},
		{"wrong resourceType for the endpoint", patient(`,"gender":"female"`), "Observation", "resourceType", bad},

		// JSON syntax and shape.
		{"truncated JSON", []byte(`{"resourceType":"Patient","name":[{"family":"Ng"`), "Patient", "Patient.name[0]", bad},
		{"not an object", []byte(`["Patient"]`), "Patient", "", bad},
		{"empty body", []byte(``), "Patient", "", bad},
		{"trailing garbage", []byte(`{"resourceType":"Patient","active":true} x`), "Patient", "Patient", bad},
		{"duplicate key", patient(`,"active":true,"active":false`), "Patient", "Patient.active", bad},
		{"invalid UTF-8", patient(`,"name":[{"family":"N` + "\xff" + `g"}]`), "Patient", "Patient.name[0].family", bad},
		{"lone UTF-16 surrogate", patient(`,"name":[{"family":"\ud800"}]`), "Patient", "Patient.name[0].family", bad},
		{"bad escape", patient(`,"name":[{"family":"a\qb"}]`), "Patient", "Patient.name[0].family", bad},
		{"raw control character", patient(`,"name":[{"family":"a` + "\x01" + `b"}]`), "Patient", "Patient.name[0].family", bad},
		{"single-quoted string", []byte(`{"resourceType":"Patient","active":'yes'}`), "Patient", "Patient.active", bad},
		{"null value", patient(`,"active":null`), "Patient", "Patient.active", bad},
		{"null in an array", patient(`,"name":[null]`), "Patient", "Patient.name[0]", bad},
		{"empty array", patient(`,"name":[]`), "Patient", "Patient.name", bad},
		{"empty object", patient(`,"maritalStatus":{}`), "Patient", "Patient.maritalStatus", bad},
		{"empty string", patient(`,"gender":""`), "Patient", "Patient.gender", bad},

		// Primitive extensions.
		{"primitive extension not an object", patient(`,"birthDate":"2020-01-01","_birthDate":"x"`), "Patient", "Patient._birthDate", bad},
		{"primitive extension with unknown element", patient(`,"_birthDate":{"foo":1}`), "Patient", "Patient._birthDate.foo", bad},
		{"_given length mismatch", patient(`,"name":[{"given":["Ann","Bo"],"_given":[{"id":"g1"}]}]`), "Patient", "Patient.name[0]._given", bad},
		{"null in given without an extension", patient(`,"name":[{"given":["Ann",null]}]`), "Patient", "Patient.name[0].given[1]", bad},

		// References, contained and nested resources, extensions.
		{"reference to a wrong target type", observation(`,"subject":{"reference":"Medication/m1"}`), "Observation", "Observation.subject", bad},
		{"reference type to a wrong target", observation(`,"performer":[{"type":"Encounter","identifier":{"value":"e1"}}]`), "Observation", "Observation.performer[0]", bad},
		{"contained reference to a wrong target",
			[]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"}}],"performer":[{"reference":"#e1"}]}`),
			"Observation", "Observation.performer[0]", bad},
		{"contained resource invalid", patient(`,"contained":[{"resourceType":"Patient","id":"c1","name":[{"foo":1}]}]`), "Patient", "Patient.contained[0].name[0].foo", bad},
		{"contained resource without resourceType", patient(`,"contained":[{"id":"c1"}]`), "Patient", "Patient.contained[0].resourceType", bad},
		{"bundle entry resource invalid",
			[]byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/m1"}}}]}`),
			"Bundle", "Bundle.entry[0].resource.subject", bad},
		{"bundle entry resource unknown type",
			[]byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Nope"}}]}`),
			"Bundle", "Bundle.entry[0].resource.resourceType", bad},
		{"extension without url", patient(`,"extension":[{"valueString":"x"}]`), "Patient", "Patient.extension[0].url", bad},
		{"extension with two values", patient(`,"extension":[{"url":"http://example.org/x","valueString":"x","valueBoolean":true}]`), "Patient", "Patient.extension[0].valueBoolean", bad},
		{"extension with a value and extensions", patient(`,"extension":[{"url":"http://example.org/x","valueString":"x","extension":[{"url":"y","valueString":"z"}]}]`), "Patient", "Patient.extension[0]", bad},

		// Invariants of the R4 definitions (error severity): refused
		// naming the key at the element.
		{"obs-6: a value and a dataAbsentReason", observation(`,"valueString":"a","dataAbsentReason":{"text":"gone"}`), "Observation", "Observation", bad},
		{"obs-3: an empty reference range", observation(`,"referenceRange":[{"type":{"text":"normal"}}]`), "Observation", "Observation.referenceRange[0]", bad},
		{"qty-3: a unit code without a system", observation(`,"valueQuantity":{"value":1,"code":"mg"}`), "Observation", "Observation.valueQuantity", bad},
		{"ele-1: an element with only an id", observation(`,"method":{"id":"m1"}`), "Observation", "Observation.method", bad},
		{"ext-1: an extension with neither value nor extensions", patient(`,"extension":[{"url":"http://example.org/x"}]`), "Patient", "Patient.extension[0]", bad},
		{"ref-1: a local reference to nothing contained", observation(`,"subject":{"reference":"#p1"}`), "Observation", "Observation.subject", bad},
		{"dom-3: a contained resource nothing refers to", patient(`,"contained":[{"resourceType":"Organization","id":"o1","name":"o"}]`), "Patient", "Patient", bad},
		{"per-1: a period that ends before it starts", observation(`,"effectivePeriod":{"start":"2024-02-01","end":"2024-01-01"}`), "Observation", "Observation.effectivePeriod", bad},

		// Narrative attacks (txt-1): what a browser showing the narrative
		// would run.
		{"narrative with a script", patient(`,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>alert(1)</script></div>"}`), "Patient", "Patient.text.div", bad},
		{"narrative with onload", patient(`,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"x\" onload=\"alert(1)\"/></div>"}`), "Patient", "Patient.text.div", bad},
		{"narrative with a javascript: link", patient(`,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"javascript:alert(1)\">x</a></div>"}`), "Patient", "Patient.text.div", bad},
		{"narrative unbalanced", patient(`,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</div>"}`), "Patient", "Patient.text.div", bad},

		// U+0000: PostgreSQL text cannot hold it, so no store may take it.
		{"NUL in a string", patient(`,"name":[{"family":"a\u0000b"}]`), "Patient", "Patient.name[0].family", bad},
		{"NUL in a repeating string", patient(`,"name":[{"given":["Ann","\u0000"]}]`), "Patient", "Patient.name[0].given[1]", bad},
		{"NUL in an identifier", patient(`,"identifier":[{"system":"urn:x","value":"1\u0000"}]`), "Patient", "Patient.identifier[0].value", bad},
		{"NUL in a member name", patient(`,"name":[{"fam\u0000ily":"Ng"}]`), "Patient", "Patient.name[0]", bad},
		{"NUL in a contained resource", patient(`,"contained":[{"resourceType":"Practitioner","id":"p","name":[{"text":"\u0000"}]}]`), "Patient", "Patient.contained[0].name[0].text", bad},
	}

	// Sizes and depth, built here rather than committed.
	huge := strings.Repeat("a", 10<<20)
	cases = append(cases, InvalidCase{"10 MB string", patient(`,"name":[{"family":"` + huge + `"}]`), "Patient", "Patient.name[0].family", bad})
	var deep strings.Builder
	deep.WriteString(`{"resourceType":"Patient"`)
	for range 100 {
		deep.WriteString(`,"extension":[{"url":"http://example.org/x"`)
	}
	deep.WriteString(`,"valueString":"x"`)
	for range 100 {
		deep.WriteString(`}]`)
	}
	deep.WriteString(`}`)
	// The parser stops at the 101st level: the 50th nested extension object.
	cases = append(cases, InvalidCase{"200-deep nesting", []byte(deep.String()), "Patient", "Patient" + strings.Repeat(".extension[0]", 50), bad})
	cases = append(cases, InvalidCase{"body over 16 MB", patient(`,"text":{"status":"generated","div":"<div>` + strings.Repeat("x", 17<<20) + `</div>"}`), "Patient", "", http.StatusRequestEntityTooLarge})
	// The default array and node limits (fhir.DefaultLimits): 10,001
	// identifiers; 10,000 names of 30 given names each, 310,000 values in
	// arrays of at most 10,000, refused at the value that crosses 300,000.
	cases = append(cases, InvalidCase{"array over 10,000 elements", patient(`,"identifier":[` + strings.Repeat(`{"value":"1"},`, 10000) + `{"value":"1"}]`), "Patient", "Patient.identifier", http.StatusRequestEntityTooLarge})
	names := `{"given":[` + strings.Repeat(`"a",`, 29) + `"a"]}`
	cases = append(cases, InvalidCase{"over 300,000 JSON values", patient(`,"name":[` + strings.Repeat(names+",", 9999) + names + `]`), "Patient", "Patient.name[9374].given[27]", http.StatusRequestEntityTooLarge})
	return cases
}
