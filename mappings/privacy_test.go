package mappings

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// visibleText is everything a recipient could read in a resource: its JSON
// and the decoded content of its attachments (a note's text is base64 in
// the JSON, so a plain search of the JSON would prove nothing).
func visibleText(v *fhir.Value) string {
	var b strings.Builder
	b.Write(v.Encode())
	var walk func(*fhir.Value)
	walk = func(v *fhir.Value) {
		switch v.Kind {
		case fhir.KindObject:
			for _, m := range v.Members {
				if m.Key == "data" && m.Value.Kind == fhir.KindString {
					if d, err := base64.StdEncoding.DecodeString(m.Value.Str); err == nil {
						b.WriteByte('\n')
						b.Write(d)
					}
				}
				walk(m.Value)
			}
		case fhir.KindArray:
			for _, e := range v.Array {
				walk(e)
			}
		}
	}
	walk(v)
	return b.String()
}

// noteCorpus builds clients with courses, held sessions and process notes,
// each note's text carrying a unique marker, plus session observations
// and screenings whose comments could be mistaken for notes.
func noteCorpus(rng *rand.Rand, clients int) (*memBook, map[string]string) {
	b := newMemBook()
	markers := map[string]string{} // marker -> client
	b.add(&Practitioner{Header: Header{Kind: KindPractitioner, ID: "pres"}, Name: Name{Family: "P"}, Role: "prescriber", Credential: "MD"})
	b.add(&Practitioner{Header: Header{Kind: KindPractitioner, ID: "ther"}, Name: Name{Family: "T"}, Role: "therapist", Credential: "LCSW"})
	words := []string{"grief", "father", "door", "sea", "work", "fear", "calm", "music", "night", "child"}
	for c := 0; c < clients; c++ {
		cid := fmt.Sprintf("c%d", c)
		b.add(&Client{Header: Header{Kind: KindClient, ID: cid}, Name: Name{Family: "F" + cid}, BirthDate: "1980-01-01", SUDProgram: rng.IntN(4) == 0})
		course := "course-" + cid
		b.add(&Course{Header: Header{Kind: KindCourse, ID: course}, Client: cid, Prescriber: "pres", Therapist: "ther", Indications: []string{"trd"}, Route: "iv", Status: "active", Start: "2026-01-05"})
		for s := 0; s < 1+rng.IntN(4); s++ {
			sid := fmt.Sprintf("%s-s%d", course, s)
			start := time.Date(2026, 1, 6+s, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)
			b.add(&Session{Header: Header{Kind: KindSession, ID: sid}, Course: course, Type: "integration", Status: "held", PlannedStart: start, ActualStart: start, Practitioners: []string{"ther"}})
			marker := fmt.Sprintf("MARKER-%08x", rng.Uint32())
			markers[marker] = cid
			var text []string
			for w := 0; w < 5+rng.IntN(30); w++ {
				text = append(text, words[rng.IntN(len(words))])
			}
			text = append(text[:len(text)/2], append([]string{marker}, text[len(text)/2:]...)...)
			b.add(&Note{Header: Header{Kind: KindNote, ID: sid + "-note"}, Session: sid, Author: "ther", Date: start[:10], Text: strings.Join(text, " ")})
			hr := float64(60 + rng.IntN(40))
			b.add(&Observation{Header: Header{Kind: KindObservation, ID: sid + "-obs"}, Session: sid, Time: start, Vitals: &Vitals{HeartRate: &hr}, Comment: "calm"})
		}
	}
	return b, markers
}

func TestProcessNotesNeverExportedWithoutConsent(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	b, markers := noteCorpus(rng, 60)
	m := testMapper()
	all := mapAll(t, m, b)
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	leaks := func(consents []*Consent) (exported int, found map[string]bool) {
		found = map[string]bool{}
		for _, v := range all {
			if !m.Exportable(v, consents, "pres", at) {
				continue
			}
			exported++
			text := visibleText(v)
			for mk := range markers {
				if strings.Contains(text, mk) {
					found[mk] = true
				}
			}
		}
		return exported, found
	}
	n, found := leaks(nil)
	if len(found) > 0 {
		t.Fatalf("%d markers in exportable resources without any consent", len(found))
	}
	if n == 0 {
		t.Fatal("nothing exportable: the test proves nothing")
	}
	// Consents for other recipients, other scopes, denials and expired
	// permissions let nothing out either.
	var decoys []*Consent
	for c := range 60 {
		cid := fmt.Sprintf("c%d", c)
		decoys = append(decoys,
			&Consent{Client: cid, Recipient: "ther", Scope: "process_notes", Decision: "permit", Start: "2026-01-01"},
			&Consent{Client: cid, Recipient: "pres", Scope: "treatment_record", Decision: "permit", Start: "2026-01-01"},
			&Consent{Client: cid, Recipient: "pres", Scope: "process_notes", Decision: "permit", Start: "2025-01-01", End: "2025-12-31"},
			&Consent{Client: cid, Recipient: "pres", Scope: "process_notes", Decision: "permit", Start: "2026-03-01"})
	}
	if _, found := leaks(decoys); len(found) > 0 {
		t.Fatalf("%d markers leak through consents that do not permit them", len(found))
	}
	// A permitting consent for half the clients: exactly their notes go.
	var permits []*Consent
	permitted := map[string]bool{}
	for c := 0; c < 60; c += 2 {
		cid := fmt.Sprintf("c%d", c)
		permitted[cid] = true
		permits = append(permits, &Consent{Client: cid, Recipient: "pres", Scope: "process_notes", Decision: "permit", Start: "2026-01-01", End: "2026-12-31"})
	}
	_, found = leaks(append(permits, decoys...))
	for mk, cid := range markers {
		if found[mk] != permitted[cid] {
			t.Errorf("marker of client %s: exported %v, consent on file %v", cid, found[mk], permitted[cid])
		}
	}
	// A denial on file overrides the permission.
	var denials []*Consent
	for _, p := range permits {
		d := *p
		d.Decision = "deny"
		denials = append(denials, &d)
	}
	if _, found := leaks(append(permits, denials...)); len(found) > 0 {
		t.Errorf("%d markers exported despite a denial", len(found))
	}
}

// A process note maps to a DocumentReference labelled V + PSYTHPN and its
// Provenance, nothing else; the note's Provenance never leaves.
func TestNoteMapsOnlyToLabelledDocumentReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	b, _ := noteCorpus(rng, 1)
	m := testMapper()
	for _, r := range b.records {
		n, ok := r.(*Note)
		if !ok {
			continue
		}
		res, _, err := m.ToFHIR(b, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 || res[0].GetString("resourceType") != "DocumentReference" || res[1].GetString("resourceType") != "Provenance" {
			t.Fatalf("note mapped to %d resources", len(res))
		}
		for _, v := range res {
			if !hasLabel(v, SysConfidentiality, "V") || !hasLabel(v, SysActCode, "PSYTHPN") {
				t.Errorf("%s not labelled V + PSYTHPN", v.GetString("resourceType"))
			}
		}
		all := []*Consent{{Client: "c0", Recipient: "pres", Scope: "process_notes", Decision: "permit", Start: "2026-01-01"}}
		if m.Exportable(res[1], all, "pres", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
			t.Error("a note's Provenance is exportable")
		}
		if !m.Exportable(res[0], all, "pres", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
			t.Error("a permitted note is not exportable")
		}
	}
}

// A treatment_record denial holds back that client's record from that
// recipient only.
func TestTreatmentRecordDenial(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	b, _ := noteCorpus(rng, 2)
	m := testMapper()
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	deny := []*Consent{{Client: "c0", Recipient: "pres", Scope: "treatment_record", Decision: "deny", Start: "2026-01-01"}}
	for _, v := range mapAll(t, m, b) {
		if v.GetString("resourceType") != "Observation" {
			continue
		}
		mine := subjectOf(v) == ResourceID(m.Practice, KindClient, "c0", "Patient")
		if got := m.Exportable(v, deny, "pres", at); got == mine {
			t.Errorf("client c0's %v observation exportable to pres: %v", mine, got)
		}
		if !m.Exportable(v, deny, "ther", at) {
			t.Error("a denial to pres holds back what goes to ther")
		}
	}
}
