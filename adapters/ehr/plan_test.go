package ehr

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// The -update flag rewrites the golden files under testdata/ehr/golden.
// It is registered only if no other test file of the package has done so,
// so that any file may declare it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/ehr/golden")
	}
}

func updatingEHRGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkEHRGolden compares got with testdata/ehr/golden/name, or rewrites it
// with -update.
func checkEHRGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(ehrTestdata, "golden", name)
	if updatingEHRGolden() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

type planCase struct {
	name string
	data func(testing.TB) []byte
}

var planCases = []planCase{
	{"epic", func(t testing.TB) []byte { return ehrFixture(t, epicFile) }},
	{"oracle", func(t testing.TB) []byte { return ehrFixture(t, oracleFile) }},
	{"kapbridge", kapbridgeStatement},
	{"minimal", func(t testing.TB) []byte { return ehrFixture(t, minimalFile) }},
}

func planOf(t testing.TB, name string) *WritePlan {
	t.Helper()
	for _, pc := range planCases {
		if pc.name == name {
			return PlanWrites(mustReadCapabilities(t, pc.data(t)))
		}
	}
	t.Fatalf("no plan case %q", name)
	return nil
}

// TestPlanTables: the printed plan of each statement, as golden files.
func TestPlanTables(t *testing.T) {
	for _, pc := range planCases {
		t.Run(pc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := planOf(t, pc.name).WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			checkEHRGolden(t, "plan-"+pc.name+".txt", b.Bytes())
		})
	}
}

// routeText says how an entry goes, in one word per part, for assertions:
// "DocumentReference<CarePlanDocument", "Observation@score".
func routeText(e PlanEntry) string {
	switch e.Outcome {
	case OutcomeCannotGo:
		return "cannot: " + e.Reason
	case OutcomeNotSent:
		return "never: " + e.Reason
	}
	var s []string
	for _, p := range e.Route.Parts {
		w := p.Type
		if p.Build != BuildAsMapped {
			w += "<" + string(p.Build)
		}
		if len(p.Via) > 0 {
			w += "@" + string(p.Via[0])
		}
		s = append(s, w)
	}
	return strings.Join(s, " + ")
}

func TestPlanEpic(t *testing.T) {
	p := planOf(t, "epic")
	want := map[Artifact]string{
		ArtifactCourse:             "DocumentReference<CarePlanDocument",
		ArtifactIndication:         "Condition",
		ArtifactGoal:               "DocumentReference@course",
		ArtifactCareTeam:           "DocumentReference@course",
		ArtifactScreening:          "QuestionnaireResponse",
		ArtifactScore:              "Observation",
		ArtifactVitals:             "Observation",
		ArtifactSessionObservation: "Observation",
		ArtifactDose:               "Observation<DoseObservation",
		ArtifactSafetySignal:       "Communication<FlagCommunication + Observation@score",
		ArtifactProcessNote:        "DocumentReference",
	}
	checkRoutes(t, p, want)
	for _, a := range []Artifact{ArtifactSession, ArtifactProvenance, ArtifactConsent} {
		if e := p.Entry(a); e.Outcome != OutcomeCannotGo || !strings.Contains(e.Reason, "only") {
			t.Errorf("%s: %s", a, routeText(e))
		}
	}
	if p.Transport != TransportSingle {
		t.Errorf("transport %s", p.Transport)
	}
	// No conditional update: find by identifier, then create; updates
	// without If-Match.
	obs := p.Entry(ArtifactScore).Route.Parts[0].Method
	if obs != (WriteMethod{Type: "Observation", Create: true, Find: FindIdentifier, Update: UpdatePut}) {
		t.Errorf("Observation method %+v", obs)
	}
	qr := p.Entry(ArtifactScreening).Route.Parts[0].Method
	if qr != (WriteMethod{Type: "QuestionnaireResponse", Create: true, Find: FindIdentifier}) {
		t.Errorf("QuestionnaireResponse method %+v", qr)
	}
	com := p.Entry(ArtifactSafetySignal).Route.Parts[0].Method
	if com != (WriteMethod{Type: "Communication", Create: true, Find: FindIdentifier}) {
		t.Errorf("Communication method %+v", com)
	}
	if !p.Entry(ArtifactProcessNote).ConsentRequired {
		t.Error("process notes must wait for a Consent")
	}
}

func TestPlanOracle(t *testing.T) {
	p := planOf(t, "oracle")
	want := map[Artifact]string{
		ArtifactCourse: "DocumentReference<CarePlanDocument",
		// Update only, updateCreate false: a QuestionnaireResponse the EHR
		// does not hold cannot be made there.
		ArtifactScreening:    "DocumentReference<QuestionnaireResponseDocument + Observation@score",
		ArtifactScore:        "Observation",
		ArtifactDose:         "Observation<DoseObservation",
		ArtifactSafetySignal: "Communication<FlagCommunication + Observation@score",
		ArtifactSession:      "Encounter",
		ArtifactProvenance:   "Provenance",
		ArtifactIndication:   "Condition",
		ArtifactGoal:         "DocumentReference@course",
	}
	checkRoutes(t, p, want)
	if e := p.Entry(ArtifactScreening); !strings.Contains(strings.Join(e.Route.Notes, " "), "QuestionnaireResponse: update only") {
		t.Errorf("screening notes %q", e.Route.Notes)
	}
	if e := p.Entry(ArtifactDose); !strings.Contains(strings.Join(e.Route.Notes, " "), "MedicationAdministration: read, search-type only") {
		t.Errorf("dose notes %q", e.Route.Notes)
	}
	if e := p.Entry(ArtifactConsent); e.Outcome != OutcomeCannotGo {
		t.Errorf("consent: %s", routeText(e))
	}
	if p.Transport != TransportBatch {
		t.Errorf("transport %s, want batch", p.Transport)
	}
	// No identifier search on Observation: find among the patient's.
	if m := p.Entry(ArtifactVitals).Route.Parts[0].Method; m.Find != FindPatient || !m.Create || m.Update != UpdatePut || m.IfMatch {
		t.Errorf("Observation method %+v", m)
	}
	if m := p.Entry(ArtifactSession).Route.Parts[0].Method; m.Find != FindIdentifier || m.Update != UpdatePatch {
		t.Errorf("Encounter method %+v", m)
	}
	if m := p.Entry(ArtifactSafetySignal).Route.Parts[0].Method; m.Find != FindNone || m.Update != UpdatePatch {
		t.Errorf("Communication method %+v", m)
	}
	if m := p.Entry(ArtifactProvenance).Route.Parts[0].Method; m.Find != FindTarget || m.Update != UpdateNone {
		t.Errorf("Provenance method %+v", m)
	}
}

func TestPlanKapbridge(t *testing.T) {
	p := planOf(t, "kapbridge")
	if p.Transport != TransportTransaction {
		t.Errorf("transport %s", p.Transport)
	}
	for _, e := range p.Entries {
		switch e.Artifact {
		case ArtifactClient, ArtifactPractitioner, ArtifactQuestionnaire:
			if e.Outcome != OutcomeNotSent {
				t.Errorf("%s: %s", e.Artifact, routeText(e))
			}
			continue
		}
		if e.Outcome != OutcomeSent || len(e.Route.Parts) != 1 || e.Route.Parts[0].Type != e.Resource || e.Route.Parts[0].Build != BuildAsMapped {
			t.Errorf("%s: %s, want native", e.Artifact, routeText(e))
			continue
		}
		m := e.Route.Parts[0].Method
		want := WriteMethod{Type: e.Resource, Conditional: true, Update: UpdatePut}
		if e.Resource == "Provenance" {
			want = WriteMethod{Type: e.Resource, PutByID: true, Update: UpdatePut, IfMatch: true}
		}
		if m != want {
			t.Errorf("%s: method %+v, want %+v", e.Artifact, m, want)
		}
		if e.Artifact != ArtifactProcessNote && len(e.Route.Notes) > 0 {
			t.Errorf("%s: notes %q", e.Artifact, e.Route.Notes)
		}
	}
}

func TestPlanMinimal(t *testing.T) {
	p := planOf(t, "minimal")
	checkRoutes(t, p, map[Artifact]string{
		ArtifactScore: "Observation",
		ArtifactDose:  "Observation<DoseObservation",
		// Only the scores of a screening can go; the plan says so.
		ArtifactScreening: "Observation@score",
	})
	if e := p.Entry(ArtifactScreening); !strings.Contains(strings.Join(e.Route.Notes, " "), "the answers themselves do not go") {
		t.Errorf("screening notes %q", e.Route.Notes)
	}
	for _, a := range []Artifact{ArtifactCourse, ArtifactIndication, ArtifactGoal, ArtifactCareTeam,
		ArtifactSafetySignal, ArtifactSession, ArtifactProvenance, ArtifactConsent, ArtifactProcessNote} {
		e := p.Entry(a)
		if e.Outcome != OutcomeCannotGo || !strings.Contains(e.Reason, "not listed") {
			t.Errorf("%s: %s", a, routeText(e))
		}
	}
	if e := p.Entry(ArtifactSafetySignal); !strings.Contains(e.Reason, "no alert can reach the prescriber") {
		t.Errorf("safety signal: %s", e.Reason)
	}
	if m := p.Entry(ArtifactScore).Route.Parts[0].Method; m.Find != FindNone || m.Update != UpdateNone {
		t.Errorf("Observation method %+v", m)
	}
}

func TestPlanNil(t *testing.T) {
	p := PlanWrites(nil)
	for _, e := range p.Entries {
		if e.Outcome == OutcomeSent {
			t.Errorf("%s goes to an EHR that declares nothing", e.Artifact)
		}
	}
	if len(p.Entries) != len(Artifacts) {
		t.Errorf("%d entries", len(p.Entries))
	}
}

// TestSafetySignalsReachThePrescriber: on every real profile each safety
// signal lands as something that alerts: a Flag or a Communication.
func TestSafetySignalsReachThePrescriber(t *testing.T) {
	for _, name := range []string{"epic", "oracle", "kapbridge"} {
		e := planOf(t, name).Entry(ArtifactSafetySignal)
		if e.Outcome != OutcomeSent || (e.Route.Parts[0].Type != "Flag" && e.Route.Parts[0].Type != "Communication") {
			t.Errorf("%s: safety signal %s", name, routeText(e))
		}
	}
}

func checkRoutes(t *testing.T, p *WritePlan, want map[Artifact]string) {
	t.Helper()
	for a, w := range want {
		if got := routeText(p.Entry(a)); got != w {
			t.Errorf("%s: %s, want %s", a, got, w)
		}
	}
}

// mappedResources are the resources the mappings made for the four
// sample courses (their golden files).
func mappedResources(t testing.TB) []*fhir.Value {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "mappings", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no mapping golden files: %v", err)
	}
	var out []*fhir.Value
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhir.ParseJSON(b, fhir.StoredLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if rs := v.Get("resources"); rs != nil {
			out = append(out, rs.Array...)
		}
	}
	return out
}

// TestArtifactOf: every resource the mappings make is an artifact of the
// plan, and the resource type is the artifact's.
func TestArtifactOf(t *testing.T) {
	seen := map[Artifact]int{}
	for _, r := range mappedResources(t) {
		a, ok := ArtifactOf(r)
		if !ok {
			t.Errorf("%s/%s: no artifact", r.GetString("resourceType"), r.GetString("id"))
			continue
		}
		seen[a]++
		typ := r.GetString("resourceType")
		for _, info := range Artifacts {
			if info.Artifact == a && info.Resource != typ && !(a == ArtifactPractitioner && typ == "PractitionerRole") {
				t.Errorf("%s classified %s (%s)", typ, a, info.Resource)
			}
		}
	}
	for _, info := range Artifacts {
		if info.Artifact != ArtifactQuestionnaire && seen[info.Artifact] == 0 {
			t.Errorf("no mapped resource is a %s", info.Artifact)
		}
	}
	if _, ok := ArtifactOf(fhir.Object()); ok {
		t.Error("an empty object is no artifact")
	}
	// An overdue record whose patient is unknown raises its Flag on the
	// practice's Organization: not a safety signal an EHR can file.
	practiceFlag, err := fhir.ParseJSON([]byte(`{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"type":"Organization","identifier":{"system":"s","value":"p"}}}`), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ArtifactOf(practiceFlag); ok {
		t.Errorf("a Flag on the practice is artifact %s", a)
	}
}
