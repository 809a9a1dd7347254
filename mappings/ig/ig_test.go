package ig_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// Every artifact is valid R4, carries the common metadata and lives at
// Base/{type}/{id}.
func TestArtifactsAreValidR4(t *testing.T) {
	all := ig.All()
	if len(all) < 30 {
		t.Fatalf("only %d artifacts", len(all))
	}
	seen := map[string]bool{}
	for _, a := range all {
		v, typ, err := fhir.ParseResource(a.JSON)
		if err != nil {
			t.Errorf("%s/%s: %v", a.ResourceType, a.ID, err)
			continue
		}
		if typ != a.ResourceType {
			t.Errorf("%s: resourceType %s", a.ID, typ)
		}
		if want := ig.Base + "/" + typ + "/" + a.ID; a.URL != want {
			t.Errorf("url %s, want %s", a.URL, want)
		}
		if seen[a.URL] {
			t.Errorf("two artifacts at %s", a.URL)
		}
		seen[a.URL] = true
		if a.Version != "0.1.0" || v.GetString("publisher") != "kapbridge" || v.GetString("name") == "" {
			t.Errorf("%s: version %q publisher %q name %q", a.URL, a.Version, v.GetString("publisher"), v.GetString("name"))
		}
		if s := v.GetString("status"); s != "active" && s != "draft" {
			t.Errorf("%s: status %q", a.URL, s)
		}
		if tag := v.Get("meta").Get("tag"); tag == nil || len(tag.Array) != 1 || tag.Array[0].GetString("system") != ig.TagSystem || tag.Array[0].GetString("code") != ig.TagCode {
			t.Errorf("%s: meta.tag is not %s|%s", a.URL, ig.TagSystem, ig.TagCode)
		}
		if got, ok := ig.Lookup(a.URL); !ok || got.ID != a.ID {
			t.Errorf("Lookup(%s) = %v, %v", a.URL, got.ID, ok)
		}
	}
	for _, u := range []string{ig.ProfileCarePlan, ig.ProfileSessionObservation, ig.ProfileScreeningResponse,
		ig.QuestionnaireMedicalClearance, ig.QuestionnairePHQ9, ig.QuestionnaireGAD7, ig.QuestionnairePCL5,
		ig.QuestionnaireCSSRS, ig.QuestionnaireAUDITC, ig.QuestionnaireDAST10,
		ig.ValueSetSessionType, ig.ValueSetScreeningResponseStatus, ig.TagSystem} {
		if !seen[u] {
			t.Errorf("no artifact at %s", u)
		}
	}
}

type concept struct {
	Code, Display, Definition string
	Concept                   []concept
}

type questionnaireItem struct {
	LinkID string `json:"linkId"`
	Code   []struct{ System, Code string }
	Type   string
	Answer []struct {
		ValueCoding struct{ System, Code, Display string }
	} `json:"answerOption"`
	AnswerValueSet string
	Item           []questionnaireItem
}

// Every local code a Questionnaire uses is defined in its CodeSystem,
// every CodeSystem is complete with display and definition, every
// CodeSystem has its all-codes ValueSet, and linkIds are unique.
func TestArtifactsAreConsistent(t *testing.T) {
	codes := map[string]bool{}
	for _, a := range ig.All() {
		if a.ResourceType != "CodeSystem" {
			continue
		}
		var cs struct {
			Content, ValueSet string
			Count             int
			Concept           []concept
		}
		if err := json.Unmarshal(a.JSON, &cs); err != nil {
			t.Fatal(err)
		}
		if cs.Content != "complete" || cs.Count != len(cs.Concept) || len(cs.Concept) == 0 {
			t.Errorf("%s: content %s count %d of %d", a.URL, cs.Content, cs.Count, len(cs.Concept))
		}
		if _, ok := ig.Lookup(cs.ValueSet); !ok {
			t.Errorf("%s: no ValueSet %s", a.URL, cs.ValueSet)
		}
		for _, c := range cs.Concept {
			if c.Display == "" || c.Definition == "" {
				t.Errorf("%s#%s lacks display or definition", a.URL, c.Code)
			}
			if codes[a.URL+"|"+c.Code] {
				t.Errorf("%s#%s twice", a.URL, c.Code)
			}
			codes[a.URL+"|"+c.Code] = true
		}
	}
	for _, a := range ig.All() {
		if a.ResourceType != "Questionnaire" {
			continue
		}
		var q struct{ Item []questionnaireItem }
		if err := json.Unmarshal(a.JSON, &q); err != nil {
			t.Fatal(err)
		}
		links := map[string]bool{}
		var walk func([]questionnaireItem)
		walk = func(items []questionnaireItem) {
			for _, it := range items {
				if links[it.LinkID] {
					t.Errorf("%s: linkId %s twice", a.URL, it.LinkID)
				}
				links[it.LinkID] = true
				for _, c := range it.Code {
					if strings.HasPrefix(c.System, ig.Base) && !codes[c.System+"|"+c.Code] {
						t.Errorf("%s: item code %s|%s is not defined", a.URL, c.System, c.Code)
					}
					if c.Code != it.LinkID {
						t.Errorf("%s: linkId %s is not the item code %s", a.URL, it.LinkID, c.Code)
					}
				}
				for _, o := range it.Answer {
					c := o.ValueCoding
					if strings.HasPrefix(c.System, ig.Base) && !codes[c.System+"|"+c.Code] {
						t.Errorf("%s: answer %s|%s is not defined", a.URL, c.System, c.Code)
					}
				}
				if it.AnswerValueSet != "" {
					if _, ok := ig.Lookup(it.AnswerValueSet); !ok {
						t.Errorf("%s: answerValueSet %s is not an artifact", a.URL, it.AnswerValueSet)
					}
				}
				walk(it.Item)
			}
		}
		walk(q.Item)
	}
}
