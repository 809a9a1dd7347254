package ehr

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
)

// inputResources reads testdata/ehr/input/name: a mapping golden file
// ({"resources": [...]}) or a single resource.
func inputResources(t testing.TB, name string) []*fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON(ehrFixture(t, filepath.Join("input", name)), fhir.StoredLimits)
	if err != nil {
		t.Fatal(err)
	}
	if rs := v.Get("resources"); rs != nil {
		return rs.Array
	}
	return []*fhir.Value{v}
}

// pickResource returns the resource of type typ among rs whose first identifier
// value ends with suffix ("" for any).
func pickResource(t testing.TB, rs []*fhir.Value, typ, suffix string) *fhir.Value {
	t.Helper()
	for _, r := range rs {
		if r.GetString("resourceType") != typ {
			continue
		}
		if ids := elementsOf(r.Get("identifier")); suffix == "" || len(ids) > 0 && strings.HasSuffix(ids[0].GetString("value"), suffix) {
			return r
		}
	}
	t.Fatalf("no %s ending %q", typ, suffix)
	return nil
}

type builtResource struct {
	res      *fhir.Value
	warnings []mappings.Problem
	err      error
}

func (b builtResource) must(t testing.TB) *fhir.Value {
	t.Helper()
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.res
}

var testPrescriber = jsonObject(jsonMember("reference", jsonString("Practitioner/b8ba46cd-596a-5640-b004-f04d58c7b8f1")),
	jsonMember("display", jsonString("the course's prescriber")))

// representationCases are the golden cases: one per builder and input.
func representationCases(t testing.TB) map[string]func() builtResource {
	course := inputResources(t, "course-iv-course.json")
	screening := inputResources(t, "screening-im-screening-baseline.json")
	dosing := inputResources(t, "session-iv-s04-dosing1.json")
	bp := inputResources(t, "observation-iv-s14-o2.json")
	phq9 := inputResources(t, "Questionnaire-phq-9.json")[0]
	return map[string]func() builtResource{
		"careplan-document": func() builtResource {
			r, w, err := CarePlanDocument(pickResource(t, course, "CarePlan", ""), course, "2026-03-01T12:00:00Z")
			return builtResource{r, w, err}
		},
		"questionnaireresponse-document": func() builtResource {
			r, w, err := QuestionnaireResponseDocument(pickResource(t, screening, "QuestionnaireResponse", "/phq9"), phq9, "2026-03-01T12:00:00Z")
			return builtResource{r, w, err}
		},
		"dose-observation": func() builtResource {
			r, w, err := DoseObservation(pickResource(t, dosing, "MedicationAdministration", ""))
			return builtResource{r, w, err}
		},
		"flag-communication-bp": func() builtResource {
			r, w, err := FlagCommunication(pickResource(t, bp, "Flag", "/bp"), []*fhir.Value{pickResource(t, bp, "Observation", "/bp")}, testPrescriber, "2026-03-01T12:00:00Z")
			return builtResource{r, w, err}
		},
		"flag-communication-phq9-item9": func() builtResource {
			r, w, err := FlagCommunication(pickResource(t, screening, "Flag", "/phq9/item9"),
				[]*fhir.Value{pickResource(t, screening, "QuestionnaireResponse", "/phq9"), pickResource(t, screening, "Observation", "/phq9/total")}, testPrescriber, "")
			return builtResource{r, w, err}
		},
	}
}

func prettyResource(t testing.TB, v *fhir.Value) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, v.Encode(), "", "  "); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// attachments decodes a DocumentReference's attachments.
func attachments(t testing.TB, doc *fhir.Value) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, c := range elementsOf(doc.Get("content")) {
		a := c.Get("attachment")
		data, err := base64.StdEncoding.DecodeString(a.GetString("data"))
		if err != nil {
			t.Fatal(err)
		}
		out[a.GetString("contentType")] = data
	}
	return out
}

// wellFormed parses an XHTML document strictly.
func wellFormed(t testing.TB, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("XHTML not well-formed: %v\n%s", err, doc)
		}
	}
}

// TestRepresentations: each builder's output is valid R4, carries its
// input's practice identifiers and security labels, is the same when built
// again, leaves its input alone, and matches its golden file (the
// DocumentReferences' XHTML is golden too, to be read).
func TestRepresentations(t *testing.T) {
	cases := representationCases(t)
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			first := build()
			res := first.must(t)
			if again := build().must(t); !bytes.Equal(res.Encode(), again.Encode()) {
				t.Error("building twice gave two results")
			}
			if issues := fhir.Validate(res); len(issues) > 0 {
				t.Errorf("not valid R4: %+v", issues)
			}
			for _, w := range first.warnings {
				t.Logf("warning: %s", w)
			}
			if elementsOf(res.Get("identifier"))[0].GetString("system") == "" ||
				!strings.HasPrefix(elementsOf(res.Get("identifier"))[0].GetString("system"), mappings.NSPracticeRecordIDs+"/acme-kap/") {
				t.Errorf("identifier %s", res.Get("identifier").Encode())
			}
			if sec := res.Get("meta").Get("security"); sec == nil || !strings.Contains(string(sec.Encode()), `"PSY"`) {
				t.Error("the security labels were not carried")
			}
			checkEHRGolden(t, name+".json", prettyResource(t, res))
			if res.GetString("resourceType") == "DocumentReference" {
				att := attachments(t, res)
				wellFormed(t, att[attachmentXHTML])
				checkEHRGolden(t, name+".xhtml", att[attachmentXHTML])
			}
		})
	}
}

// TestInputsUntouched: a builder never changes what it was given.
func TestInputsUntouched(t *testing.T) {
	course := inputResources(t, "course-iv-course.json")
	before := make([][]byte, len(course))
	for i, r := range course {
		before[i] = r.Encode()
	}
	doc, _, err := CarePlanDocument(pickResource(t, course, "CarePlan", ""), course, "")
	if err != nil {
		t.Fatal(err)
	}
	doc.Get("subject").Set("reference", jsonString("Patient/changed"))
	for i, r := range course {
		if !bytes.Equal(before[i], r.Encode()) {
			t.Errorf("%s changed", r.GetString("resourceType"))
		}
	}
}

func TestCarePlanDocument(t *testing.T) {
	course := inputResources(t, "course-iv-course.json")
	cp := pickResource(t, course, "CarePlan", "")
	doc, _, err := CarePlanDocument(cp, course, "2026-03-01T12:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	att := attachments(t, doc)
	if !bytes.Equal(att[attachmentFHIRJSON], cp.Encode()) {
		t.Error("the attached JSON is not the CarePlan as given")
	}
	back, _, err := fhir.ParseResource(att[attachmentFHIRJSON])
	if err != nil || back.GetString("id") != cp.GetString("id") {
		t.Errorf("attached CarePlan does not parse back: %v", err)
	}
	x := string(att[attachmentXHTML])
	for _, want := range []string{"Ketamine-assisted psychotherapy course", "treatment-resistant depression",
		"Get through a work week without dreading mornings", "prescriber: Practitioner/", "ketamine hydrochloride IV infusion"} {
		if !strings.Contains(x, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if doc.Get("type").Get("coding").Array[0].GetString("code") != "18776-5" {
		t.Error("type is not LOINC 18776-5")
	}
	if got, want := identifierText(doc.Get("identifier")), mappings.NSPracticeRecordIDs+"/acme-kap/course|iv-course"; got != want {
		t.Errorf("identifier %s, want %s", got, want)
	}
	// Without the related resources, references stand in for them.
	doc2, _, err := CarePlanDocument(cp, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if x := string(attachments(t, doc2)[attachmentXHTML]); !strings.Contains(x, "Goal/f51e5424-0980-5e99-b0cb-d7c1b4bf9552") || doc2.Get("date") != nil {
		t.Error("without related resources the summary should name the goals by reference, and no date was given")
	}
}

// TestSummaryEscapes: text from the record never becomes markup.
func TestSummaryEscapes(t *testing.T) {
	course := inputResources(t, "course-iv-course.json")
	cp := cloneValue(pickResource(t, course, "CarePlan", ""))
	hostile := `<script>alert("x")</script> & <b>bold</b> ]]> ` + "\x01\x00" + "\xff end"
	cp.Set("title", jsonString(hostile))
	cp.Set("note", jsonArray(jsonObject(jsonMember("text", jsonString("</li></ul><img src=x onerror=alert(1)>")))))
	doc, _, err := CarePlanDocument(cp, course, "")
	if err != nil {
		t.Fatal(err)
	}
	x := attachments(t, doc)[attachmentXHTML]
	wellFormed(t, x)
	s := string(x)
	for _, bad := range []string{"<script", "<b>", "<img", "\x01", "\x00", "\xff"} {
		if strings.Contains(s, bad) {
			t.Errorf("summary carries %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The readable title is text inside title and h1 only.
	d := xml.NewDecoder(bytes.NewReader(x))
	var elements []string
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			elements = append(elements, se.Name.Local)
		}
	}
	for _, e := range elements {
		switch e {
		case "html", "head", "meta", "title", "body", "h1", "h2", "p", "table", "tr", "th", "td", "ul", "li":
		default:
			t.Errorf("element %q in the summary", e)
		}
	}
}

func TestQuestionnaireResponseDocument(t *testing.T) {
	screening := inputResources(t, "screening-im-screening-baseline.json")
	qr := pickResource(t, screening, "QuestionnaireResponse", "/phq9")
	phq9 := inputResources(t, "Questionnaire-phq-9.json")[0]
	doc, w, err := QuestionnaireResponseDocument(qr, phq9, "")
	if err != nil || len(w) > 0 {
		t.Fatal(err, w)
	}
	x := string(attachments(t, doc)[attachmentXHTML])
	if !strings.Contains(x, "Little interest or pleasure in doing things") || !strings.Contains(x, "Patient Health Questionnaire-9 (PHQ-9)") {
		t.Error("question texts or title from the Questionnaire are missing")
	}
	if !bytes.Equal(attachments(t, doc)[attachmentFHIRJSON], qr.Encode()) {
		t.Error("the attached JSON is not the QuestionnaireResponse as given")
	}
	// Another questionnaire's texts are not used, and it is said.
	clear := pickResource(t, screening, "QuestionnaireResponse", "/clearance")
	doc, w, err = QuestionnaireResponseDocument(clear, phq9, "")
	if err != nil || len(w) != 1 {
		t.Fatalf("err %v warnings %v", err, w)
	}
	if x := string(attachments(t, doc)[attachmentXHTML]); !strings.Contains(x, "cardiovascular issues") || !strings.Contains(x, "<td>no</td>") {
		t.Error("the response's own texts and boolean answers should show")
	}
	if doc.Get("identifier").Array[0].GetString("value") != "im-screening-baseline/clearance" {
		t.Errorf("identifier %s", doc.Get("identifier").Encode())
	}
}

func TestDoseObservation(t *testing.T) {
	ma := pickResource(t, inputResources(t, "session-iv-s04-dosing1.json"), "MedicationAdministration", "")
	obs, w, err := DoseObservation(ma)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(obs.Get("valueQuantity").Encode()); got != string(ma.Get("dosage").Get("dose").Encode()) {
		t.Errorf("value %s", got)
	}
	text := observationText(obs)
	for _, want := range []string{"ketamine dose administered: 34 mg", "route intravenous", "lot number KET-24A117", "dose per kg 0.5 mg/kg"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q lacks %q", text, want)
		}
	}
	if obs.Get("encounter").GetString("reference") != ma.Get("context").GetString("reference") {
		t.Error("encounter not carried")
	}
	if len(w) != 1 || w[0].Field != "MedicationAdministration.reasonReference" {
		t.Errorf("warnings %v", w)
	}
}

func TestFlagCommunication(t *testing.T) {
	screening := inputResources(t, "screening-im-screening-baseline.json")
	flag := pickResource(t, screening, "Flag", "/phq9/item9")
	qr := pickResource(t, screening, "QuestionnaireResponse", "/phq9")
	com, w, err := FlagCommunication(flag, []*fhir.Value{qr}, testPrescriber, "2026-03-01T12:00:00Z")
	if err != nil || len(w) > 0 {
		t.Fatal(err, w)
	}
	if !hasCoding(com.Get("category"), sysCommCategory, "alert") || com.GetString("priority") != "urgent" {
		t.Error("not an urgent alert")
	}
	if com.Get("subject").GetString("reference") != flag.Get("subject").GetString("reference") {
		t.Error("not about the Flag's patient")
	}
	if com.Get("recipient").Array[0].GetString("reference") != "Practitioner/b8ba46cd-596a-5640-b004-f04d58c7b8f1" {
		t.Error("recipient is not the prescriber")
	}
	payload := com.Get("payload").Array[0].GetString("contentString")
	for _, want := range []string{"PHQ-9 item 9 positive: thoughts of death or self-harm", "http://loinc.org|44260-8", "item 44260-8: "} {
		if !strings.Contains(payload, want) {
			t.Errorf("payload %q lacks %q", payload, want)
		}
	}
	if got := identifierText(com.Get("identifier")); got != identifierText(flag.Get("identifier")) {
		t.Errorf("identifier %s", got)
	}
	// Without evidence it still goes, and says the value is missing.
	if _, w, err := FlagCommunication(flag, nil, testPrescriber, ""); err != nil || len(w) != 1 {
		t.Errorf("no evidence: err %v warnings %v", err, w)
	}
}

func TestRepresentationRefused(t *testing.T) {
	course := inputResources(t, "course-iv-course.json")
	cp := pickResource(t, course, "CarePlan", "")
	noID := cloneValue(cp)
	noID.Delete("identifier")
	flag := pickResource(t, inputResources(t, "observation-iv-s14-o2.json"), "Flag", "")
	for name, f := range map[string]func() error{
		"wrong type":        func() error { _, _, err := CarePlanDocument(flag, nil, ""); return err },
		"nil":               func() error { _, _, err := DoseObservation(nil); return err },
		"no identifier":     func() error { _, _, err := CarePlanDocument(noID, nil, ""); return err },
		"no recipient":      func() error { _, _, err := FlagCommunication(flag, nil, nil, ""); return err },
		"empty recipient":   func() error { _, _, err := FlagCommunication(flag, nil, fhir.Object(), ""); return err },
		"not questionnaire": func() error { _, _, err := QuestionnaireResponseDocument(cp, nil, ""); return err },
	} {
		if err := f(); !errors.Is(err, ErrRepresentation) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRepresentationIdentifiersUnique: a representation carries its
// input's identifier; searching its type by that identifier must find it
// alone, so no resource the mappings make of that type may share it.
func TestRepresentationIdentifiersUnique(t *testing.T) {
	all := mappedResources(t)
	native := map[string]bool{} // type + system|value
	for _, r := range all {
		for _, id := range elementsOf(r.Get("identifier")) {
			native[r.GetString("resourceType")+" "+id.GetString("system")+"|"+id.GetString("value")] = true
		}
	}
	derived := map[string]string{"CarePlan": "DocumentReference", "QuestionnaireResponse": "DocumentReference",
		"MedicationAdministration": "Observation", "Flag": "Communication"}
	seen := map[string]string{}
	for _, r := range all {
		to, ok := derived[r.GetString("resourceType")]
		if !ok {
			continue
		}
		for _, id := range elementsOf(r.Get("identifier")) {
			k := to + " " + id.GetString("system") + "|" + id.GetString("value")
			if native[k] {
				t.Errorf("%s/%s as %s would share identifier %s with a mapped %s", r.GetString("resourceType"), r.GetString("id"), to, k, to)
			}
			if other, dup := seen[k]; dup {
				t.Errorf("%s and %s would share %s", other, r.GetString("id"), k)
			}
			seen[k] = r.GetString("id")
		}
	}
	if len(seen) == 0 {
		t.Fatal("no resources to represent")
	}
}
