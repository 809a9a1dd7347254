package fhirtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// srTestDisclosure checks that a store records each version's Sensitivity
// itself and that Query.Hide and HistoryQuery.Hide make hidden resources
// nonexistent everywhere: matches, totals, sort, chains, _has, includes,
// compartments, and type and system history (deletions too). Every check
// is also run without Hide, so it fails if the hidden data were missing
// rather than hidden.
func srTestDisclosure(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	ctx := t.Context()
	note := func(id string) []byte {
		return fmt.Appendf(nil, `{"resourceType":"DocumentReference","id":%q,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]}}`, id)
	}
	at := func(sec int) time.Time { return srT0.Add(time.Duration(sec) * time.Second) }
	put := func(typ, id string, vid int64, body []byte, sec int, es ...fhir.IndexEntry) {
		t.Helper()
		v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}, VersionID: vid, LastUpdated: at(sec), JSON: body, Deleted: body == nil}
		// Whatever the caller claims, the store decides.
		v.Sensitivity = fhir.Restricted
		if err := s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, fhir.Index{Entries: es}) }); err != nil {
			t.Fatalf("put %s/%s v%d: %v", typ, id, vid, err)
		}
	}
	desc := func(text string) fhir.IndexEntry { return srStr("description", text) }
	subj := srRef("subject", "Patient", "p1")
	put("Patient", "p1", 1, srBody("Patient", "p1", 1), 1, srStr("name", "Rivera"))
	put("Patient", "p2", 1, srBody("Patient", "p2", 1), 2, srStr("name", "Rivas"))
	put("DocumentReference", "n1", 1, note("n1"), 3, subj, desc("secret session content"), srTok("identifier", "urn:notes", "n1", ""))
	put("DocumentReference", "d2", 1, srBody("DocumentReference", "d2", 1), 4, subj, desc("ordinary summary"))
	put("DocumentReference", "n3", 1, note("n3"), 5, srRef("subject", "Patient", "p2"), desc("secret too"))
	put("DocumentReference", "n3", 2, nil, 6) // a deleted note
	// Ordinary at first, a note since its second version.
	put("DocumentReference", "r4", 1, srBody("DocumentReference", "r4", 1), 7, desc("relabelled"))
	put("DocumentReference", "r4", 2, note("r4"), 8, desc("relabelled"))
	put("Provenance", "prov", 1, srBody("Provenance", "prov", 1), 9, srRef("target", "DocumentReference", "n1"), srRef("target", "DocumentReference", "d2"))

	key := func(typ, id string) fhir.Key { return fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id} }
	wantSens := func(what string, got, want fhir.Sensitivity) {
		t.Helper()
		if got != want {
			t.Errorf("%s: Sensitivity %b, want %b", what, got, want)
		}
	}
	noteSens := fhir.PsychotherapyNote | fhir.VeryRestricted
	if v, err := s.Read(ctx, key("DocumentReference", "n1")); err != nil {
		t.Fatal(err)
	} else {
		wantSens("Read note", v.Sensitivity, noteSens)
	}
	if v, err := s.Read(ctx, key("DocumentReference", "d2")); err != nil {
		t.Fatal(err)
	} else {
		wantSens("Read ordinary", v.Sensitivity, 0)
	}
	if v, err := s.Read(ctx, key("DocumentReference", "n3")); err != nil || !v.Deleted {
		t.Fatalf("read deleted note: %v deleted=%v", err, v.Deleted)
	} else {
		wantSens("Read deleted note", v.Sensitivity, noteSens)
	}
	if v, err := s.VRead(ctx, key("DocumentReference", "r4"), 1); err != nil {
		t.Fatal(err)
	} else {
		wantSens("VRead r4 v1", v.Sensitivity, 0)
	}
	if vs, err := s.History(ctx, key("DocumentReference", "n3"), 0); err != nil || len(vs) != 2 {
		t.Fatalf("history n3: %v, %d versions", err, len(vs))
	} else {
		wantSens("History n3 deletion", vs[0].Sensitivity, noteSens)
		wantSens("History n3 v1", vs[1].Sensitivity, noteSens)
	}

	p := func(typ, code string) *search.Param {
		prm := search.Lookup(typ, code)
		if prm == nil {
			t.Fatalf("no parameter %s.%s", typ, code)
		}
		return prm
	}
	str := func(text string) search.Value { return search.Value{Text: text} }
	hasDesc := func(text string) search.Clause {
		return search.Clause{Has: &search.Has{Type: "DocumentReference", RefParam: p("DocumentReference", "subject"),
			Clause: srCl(p("DocumentReference", "description"), "", str(text))}}
	}
	chainDesc := func(text string) search.Clause {
		return search.Clause{Param: p("Provenance", "target"), Chain: &search.Chain{Type: "DocumentReference",
			Clause: srCl(p("DocumentReference", "description"), "", str(text))}}
	}
	byDesc := &search.Query{Type: "DocumentReference", Sort: []search.SortKey{{Param: p("DocumentReference", "description")}}}
	cases := []struct {
		name         string
		q            *search.Query
		hidden, open []string
	}{
		{"all", srQ("DocumentReference"), []string{"d2"}, []string{"d2", "n1", "r4"}},
		{"string prefix", srQ("DocumentReference", srCl(p("DocumentReference", "description"), "", str("secret"))), nil, []string{"n1"}},
		{"identifier", srQ("DocumentReference", srCl(p("DocumentReference", "identifier"), "", srTV("urn:notes", "n1"))), nil, []string{"n1"}},
		{"_id", srQ("DocumentReference", srCl(srID, "", search.Value{Code: "n1"})), nil, []string{"n1"}},
		{"_has", srQ("Patient", hasDesc("secret")), nil, []string{"p1"}},
		{"_has ordinary", srQ("Patient", hasDesc("ordinary")), []string{"p1"}, []string{"p1"}},
		{"chain", srQ("Provenance", chainDesc("secret")), nil, []string{"prov"}},
		{"sort", byDesc, []string{"d2"}, []string{"d2", "r4", "n1"}},
		{"compartment", &search.Query{Type: "DocumentReference", Compartment: &search.Compartment{Type: "Patient", ID: "p1",
			Params: []*search.Param{p("DocumentReference", "subject")}}}, []string{"d2"}, []string{"d2", "n1"}},
	}
	for _, tc := range cases {
		for _, hide := range []fhir.Sensitivity{fhir.PsychotherapyNote, 0} {
			want := tc.open
			if hide != 0 {
				want = tc.hidden
			}
			q := *tc.q
			q.Hide = hide
			t.Run(fmt.Sprintf("%s hide=%b", tc.name, hide), func(t *testing.T) {
				srExpect(t, srch, &q, want)
				q.Total, q.Count = "accurate", 1
				res, err := srch.Search(ctx, fhir.DefaultTenant, &q, nil)
				if err != nil || res.Total != len(want) {
					t.Errorf("total %d, %v; want %d", res.Total, err, len(want))
				}
			})
		}
	}

	includes := func(q *search.Query) []string {
		t.Helper()
		res, err := srch.Search(ctx, fhir.DefaultTenant, q, nil)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		return append(srKeys(res.Matches), srKeys(res.Included)...)
	}
	for _, hide := range []fhir.Sensitivity{fhir.PsychotherapyNote, 0} {
		rev := srQ("Patient", srCl(srID, "", search.Value{Code: "p1"}))
		rev.RevInclude = []search.Include{{SourceType: "DocumentReference", Param: p("DocumentReference", "subject")}}
		rev.Hide = hide
		fwd := srQ("Provenance")
		fwd.Include = []search.Include{{SourceType: "Provenance", Param: p("Provenance", "target")}}
		fwd.Hide = hide
		wantRev := []string{"Patient/p1", "DocumentReference/d2"}
		wantFwd := []string{"Provenance/prov", "DocumentReference/d2"}
		if hide == 0 {
			wantRev = []string{"Patient/p1", "DocumentReference/d2", "DocumentReference/n1"}
			wantFwd = []string{"Provenance/prov", "DocumentReference/d2", "DocumentReference/n1"}
		}
		if got := includes(rev); !slices.Equal(got, wantRev) {
			t.Errorf("_revinclude hide=%b: %v, want %v", hide, got, wantRev)
		}
		if got := includes(fwd); !slices.Equal(got, wantFwd) {
			t.Errorf("_include hide=%b: %v, want %v", hide, got, wantFwd)
		}
	}

	history := func(q search.HistoryQuery) []string {
		t.Helper()
		var out []string
		for page := 0; page < 100; page++ {
			res, err := srch.HistoryPage(ctx, fhir.DefaultTenant, q)
			if err != nil {
				t.Fatalf("history: %v", err)
			}
			for _, v := range res.Versions {
				out = append(out, fmt.Sprintf("%s/%d", v.ID, v.VersionID))
			}
			if res.Next == nil {
				return out
			}
			q.Cursor = res.Next
		}
		t.Fatal("history does not end")
		return nil
	}
	for _, hq := range []search.HistoryQuery{{Type: "DocumentReference"}, {}} {
		hq.Count = 1
		open := history(hq)
		hq.Hide = fhir.PsychotherapyNote
		got := history(hq)
		for _, hiddenV := range []string{"n1/1", "n3/1", "n3/2", "r4/1", "r4/2"} {
			if !slices.Contains(open, hiddenV) {
				t.Errorf("history %q without Hide lacks %s: %v", hq.Type, hiddenV, open)
			}
			if slices.Contains(got, hiddenV) {
				t.Errorf("history %q with Hide shows %s: %v", hq.Type, hiddenV, got)
			}
		}
		if !slices.Contains(got, "d2/1") {
			t.Errorf("history %q with Hide lacks d2/1: %v", hq.Type, got)
		}
	}
}
