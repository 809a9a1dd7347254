package ehr

import "testing"

// FuzzInboundResource: whatever an EHR puts in a search Bundle's entry,
// reading it never panics; what it accepts has a type, an id, a 64-hex
// content hash that ignores meta, and a URL under the base.
func FuzzInboundResource(f *testing.F) {
	for _, s := range []string{
		vitalObs("p1", "2026-01-15T10:40:00-05:00", "8867-4", "Heart rate", 88, "/min"),
		bpObs("p1", "2026-01-15T10:40:00-05:00", 150, 95),
		doseGiven("p1", "2026-01-15", 40),
		`{"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":"2026-01-15T10:40:00.123Z","tag":[{"system":"` + EchoTagSystem + `","code":"` + EchoTagCode + `"}]}}`,
		`{"resourceType":"Flag","id":"f","period":{"start":"2026-01"}}`,
		`{"resourceType":"Observation"}`, `[]`, `{"id":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	c, err := NewClient(Config{BaseURL: "https://ehr.example/fhir", Logger: discard})
	if err != nil {
		f.Fatal(err)
	}
	p := &Poller{Client: c}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := p.resource(raw, nil)
		if err != nil {
			return
		}
		if r.Type == "" || r.ID == "" || len(r.Hash) != 64 || r.URL == "" {
			t.Fatalf("accepted without type, id, hash or URL: %+v", r)
		}
		for _, w := range []string{"_lastUpdated", "date", ""} {
			_ = windowTime(r, w)
		}
		meta := r.Value.Get("meta")
		if meta != nil {
			r.Value.Delete("meta")
			if inboundHash(r.Value) != r.Hash {
				t.Fatalf("the content hash depends on meta")
			}
		}
		_ = clinicalDay(r.Value)
		_ = practiceIdentifier(r.Value, "p")
		_ = localize(r.Value, "p", LinkedPatient{Client: "c", Remote: "p1"}, nil)
	})
}
