package fhirtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// RunSearchSuite checks a store's search, paging and history (the store
// must be a search.Store) against index entries and queries built by hand
// (independent of how package search extracts and parses them), and, end
// to end with both, the parameters answered from other parameters' values
// (aliassuite.go). Subtests run in parallel; the read-only ones share one
// loaded store.
func RunSearchSuite(t *testing.T, open StoreOpener) {
	t.Run("Queries", func(t *testing.T) {
		s := open(t)
		srch := srAs(t, s)
		srLoad(t, s)
		for _, tc := range srCases() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srExpect(t, srch, tc.q, tc.want)
			})
		}
		t.Run("Unsupported", func(t *testing.T) {
			t.Parallel()
			q := srQ("Observation", srCl(srSubject, "identifier", search.Value{HasSystem: true, System: "urn:mrn", Code: "111"}))
			if _, err := srch.Search(t.Context(), fhir.DefaultTenant, q, nil); err == nil {
				t.Errorf("subject:identifier: no error; want a clear unsupported error")
			}
		})
		t.Run("Includes", func(t *testing.T) { t.Parallel(); srTestIncludes(t, srch) })
		t.Run("Sort", func(t *testing.T) { t.Parallel(); srTestSort(t, srch) })
		t.Run("Totals", func(t *testing.T) { t.Parallel(); srTestTotals(t, srch) })
		t.Run("TenantIsolation", func(t *testing.T) {
			t.Parallel()
			res, err := srch.Search(t.Context(), "other", srQ("Observation"), nil)
			if err != nil || len(res.Matches) != 0 {
				t.Errorf("other tenant: %d matches, %v; want none", len(res.Matches), err)
			}
		})
	})
	runCases(t, []suiteCase[StoreOpener]{
		{"WritesReplaceIndex", srTestWrites},
		{"FailedUpdateLeavesNoIndex", srTestFailedUpdate},
		{"TxSearchSeesOwnWrites", srTestTxSearch},
		{"PagingStableUnderWrites", srTestPagingStability},
		{"History", srTestHistory},
		{"AliasParameters", srTestAliases},
		{"Disclosure", srTestDisclosure},
	}, func(*testing.T) StoreOpener { return open }, nil)
}

func srAs(t *testing.T, s fhir.Store) search.Store {
	t.Helper()
	srch, ok := s.(search.Store)
	if !ok {
		t.Fatalf("%T does not implement search.Store", s)
	}
	return srch
}

// Parameters as the registry would describe them (only what a store reads).
var (
	srCode      = &search.Param{Code: "code", Type: search.Token}
	srStatus    = &search.Param{Code: "status", Type: search.Token}
	srSubject   = &search.Param{Code: "subject", Type: search.Reference, Targets: []string{"Patient", "Group"}}
	srPatient   = &search.Param{Code: "patient", Type: search.Reference, Targets: []string{"Patient"}}
	srPerformer = &search.Param{Code: "performer", Type: search.Reference}
	srDate      = &search.Param{Code: "date", Type: search.Date}
	srValueQty  = &search.Param{Code: "value-quantity", Type: search.Quantity}
	srCodeValue = &search.Param{Code: "code-value-quantity", Type: search.Composite, Components: []search.Component{
		{Param: srCode}, {Param: srValueQty}}}
	srName       = &search.Param{Code: "name", Type: search.String}
	srIdentifier = &search.Param{Code: "identifier", Type: search.Token}
	srGender     = &search.Param{Code: "gender", Type: search.Token}
	srBirthdate  = &search.Param{Code: "birthdate", Type: search.Date}
	srGP         = &search.Param{Code: "general-practitioner", Type: search.Reference}
	srURL        = &search.Param{Code: "url", Type: search.URI}
	srTarget     = &search.Param{Code: "target", Type: search.Reference}
	srID         = &search.Param{Code: "_id", Type: search.Token}
	srLastUpd    = &search.Param{Code: "_lastUpdated", Type: search.Date}
	srProb       = &search.Param{Code: "probability", Type: search.Number}
)

const (
	srLOINC = "http://loinc.org"
	srUCUM  = "http://unitsofmeasure.org"
	srMR    = "http://terminology.hl7.org/CodeSystem/v2-0203"
	srAG    = "http://hl7.org/fhir/administrative-gender"
)

// Index entries built by hand.
func srTok(p, system, code, text string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: p, Type: "token", System: system, Code: code, Text: text}
}

func srStr(p, s string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: p, Type: "string", Text: srNorm(s), Exact: s}
}

func srNorm(s string) string {
	return strings.NewReplacer("ü", "u", "é", "e").Replace(strings.ToLower(s))
}

func srRef(p, typ, id string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: p, Type: "reference", RefType: typ, RefID: id}
}

func srDateE(p string, lo, hi time.Time) fhir.IndexEntry {
	return fhir.IndexEntry{Param: p, Type: "date", Lo: lo.UnixMicro(), Hi: hi.UnixMicro()}
}

func srQtyE(p string, v, prec float64, code string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: p, Type: "quantity", NumLo: v - prec/2, NumHi: v + prec/2, System: srUCUM, Code: code}
}

// Date ranges at the precisions FHIR dates have.
func srYear(y int) (time.Time, time.Time) {
	lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	return lo, lo.AddDate(1, 0, 0).Add(-time.Microsecond)
}

func srMonth(y int, m time.Month) (time.Time, time.Time) {
	lo := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	return lo, lo.AddDate(0, 1, 0).Add(-time.Microsecond)
}

func srDay(y int, m time.Month, d int) (time.Time, time.Time) {
	lo := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return lo, lo.AddDate(0, 0, 1).Add(-time.Microsecond)
}

func srInstant(y int, m time.Month, d, h int) (time.Time, time.Time) {
	lo := time.Date(y, m, d, h, 0, 0, 0, time.UTC)
	return lo, lo
}

// Search values.
func srDV(p search.Prefix, lo, hi time.Time) search.Value {
	return search.Value{Prefix: p, Lo: lo.UnixMicro(), Hi: hi.UnixMicro()}
}

func srNV(p search.Prefix, v, prec float64) search.Value {
	return search.Value{Prefix: p, Num: v, NumLo: v - prec/2, NumHi: v + prec/2}
}

func srTV(system, code string) search.Value {
	return search.Value{HasSystem: true, System: system, Code: code}
}

func srCl(p *search.Param, mod string, vs ...search.Value) search.Clause {
	return search.Clause{Param: p, Modifier: mod, Values: vs}
}

func srQ(typ string, cs ...search.Clause) *search.Query {
	return &search.Query{Type: typ, Clauses: cs}
}

// srT0 is when the suite's data was written: LastUpdated is t0 + n seconds.
var srT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type srRes struct {
	typ, id string
	at      int // seconds after srT0
	entries []fhir.IndexEntry
}

func srData() []srRes {
	b1lo, b1hi := srDay(1980, 5, 10)
	b2lo, b2hi := srMonth(1980, 5)
	b3lo, b3hi := srYear(1990)
	b4lo, b4hi := srInstant(2000, 1, 1, 10)
	ob := func(id string, at int, es ...fhir.IndexEntry) srRes { return srRes{"Observation", id, at, es} }
	hr := srTok("code", srLOINC, "8867-4", "heart rate")
	wt := srTok("code", srLOINC, "29463-7", "body weight")
	comp := func(code string, v float64, unit string) fhir.IndexEntry {
		return fhir.IndexEntry{Param: "code-value-quantity", Type: "composite", Parts: []fhir.IndexEntry{
			{Type: "token", System: srLOINC, Code: code}, srQtyE("", v, 1, unit)}}
	}
	day := func(y int, m time.Month, dd, h int) fhir.IndexEntry {
		lo, hi := srInstant(y, m, dd, h)
		return srDateE("date", lo, hi)
	}
	return []srRes{
		{"Practitioner", "pr1", 1, []fhir.IndexEntry{srStr("name", "Jones")}},
		{"Patient", "p1", 2, []fhir.IndexEntry{srStr("name", "Rivera"), srStr("name", "Ana"),
			{Param: "identifier", Type: "token", System: "urn:mrn", Code: "111"},
			{Param: "identifier", Type: "token", System: "urn:mrn", Code: "111", TypeSystem: srMR, TypeCode: "MR"},
			srTok("gender", srAG, "female", ""), srDateE("birthdate", b1lo, b1hi), srRef("general-practitioner", "Practitioner", "pr1")}},
		{"Patient", "p2", 3, []fhir.IndexEntry{srStr("name", "Rivas"), srTok("identifier", "urn:mrn", "222", ""),
			srTok("gender", srAG, "male", ""), srDateE("birthdate", b2lo, b2hi), srRef("general-practitioner", "Practitioner", "pr1")}},
		{"Patient", "p3", 4, []fhir.IndexEntry{srStr("name", "Müller"), srTok("identifier", "urn:other", "111", ""),
			srTok("gender", srAG, "female", ""), srDateE("birthdate", b3lo, b3hi)}},
		{"Patient", "p4", 5, []fhir.IndexEntry{srStr("name", "Smith"), srTok("gender", srAG, "male", ""), srDateE("birthdate", b4lo, b4hi)}},
		{"Patient", "p5", 6, nil},
		ob("o1", 7, hr, srTok("status", "", "final", ""), srRef("subject", "Patient", "p1"), srRef("patient", "Patient", "p1"),
			day(2020, 1, 15, 10), srQtyE("value-quantity", 72, 1, "/min"), comp("8867-4", 72, "/min")),
		ob("o2", 8, hr, srTok("status", "", "preliminary", ""), srRef("subject", "Patient", "p1"), srRef("patient", "Patient", "p1"),
			srRef("performer", "Practitioner", "pr1"), day(2021, 6, 1, 8), srQtyE("value-quantity", 100, 1, "/min"), comp("8867-4", 100, "/min")),
		ob("o3", 9, wt, srTok("status", "", "final", ""), srRef("subject", "Patient", "p2"), srRef("patient", "Patient", "p2"),
			day(2020, 3, 1, 9), srQtyE("value-quantity", 80, 1, "kg"), comp("29463-7", 80, "kg")),
		ob("o4", 10, hr, srTok("status", "", "final", ""), srRef("subject", "Patient", "p3"), srRef("patient", "Patient", "p3"),
			day(2019, 12, 31, 23), srQtyE("value-quantity", 60, 1, "/min"), comp("8867-4", 60, "/min")),
		ob("o5", 11, wt, srTok("status", "", "final", ""), srQtyE("value-quantity", 75.5, 0.1, "kg")),
		ob("o6", 12, srTok("status", "", "final", ""),
			fhir.IndexEntry{Param: "subject", Type: "reference", Code: "http://other.org/fhir/Patient/9"}),
		ob("o7", 13, srTok("code", "", "local-1", "local code"), srRef("subject", "Group", "g1")),
		{"ValueSet", "vs1", 14, []fhir.IndexEntry{{Param: "url", Type: "uri", Code: "http://example.org/fhir/ValueSet/a"}}},
		{"ValueSet", "vs2", 15, []fhir.IndexEntry{{Param: "url", Type: "uri", Code: "http://example.org/fhir/ValueSet/a/b"}}},
		{"ValueSet", "vs3", 16, []fhir.IndexEntry{{Param: "url", Type: "uri", Code: "http://other.org/x"}}},
		{"Provenance", "prov1", 17, []fhir.IndexEntry{srRef("target", "Observation", "o1"), srRef("target", "Patient", "p1")}},
		{"RiskAssessment", "ra1", 18, []fhir.IndexEntry{{Param: "probability", Type: "number", NumLo: 0.25 - 0.01/2, NumHi: 0.25 + 0.01/2}}},
		{"RiskAssessment", "ra2", 19, []fhir.IndexEntry{{Param: "probability", Type: "number", NumLo: 0.8 - 0.1/2, NumHi: 0.8 + 0.1/2}}},
	}
}

func srBody(typ, id string, vid int64) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, vid)
}

// srLoad writes the suite's data, two resources per Update.
func srLoad(t *testing.T, s fhir.Store) {
	t.Helper()
	data := srData()
	for i := 0; i < len(data); i += 2 {
		err := s.Update(t.Context(), func(tx fhir.Tx) error {
			for _, r := range data[i:min(i+2, len(data))] {
				v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: r.typ, ID: r.id}, VersionID: 1,
					LastUpdated: srT0.Add(time.Duration(r.at) * time.Second), JSON: srBody(r.typ, r.id, 1)}
				if err := tx.Put(t.Context(), v, fhir.Index{Entries: r.entries}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
	}
}

type srCase struct {
	name string
	q    *search.Query
	want []string // ids, in order when the query sorts, else any order
}

func srCases() []srCase {
	obs := func(cs ...search.Clause) *search.Query { return srQ("Observation", cs...) }
	pat := func(cs ...search.Clause) *search.Query { return srQ("Patient", cs...) }
	d1lo, d1hi := srDay(1980, 5, 10)
	mlo, mhi := srMonth(1980, 5)
	y80lo, y80hi := srYear(1980)
	y90lo, y90hi := srYear(1990)
	y00lo, y00hi := srDay(2000, 1, 1)
	return []srCase{
		{"AllOfType", obs(), []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7"}},
		{"TokenCode", obs(srCl(srCode, "", search.Value{Code: "8867-4"})), []string{"o1", "o2", "o4"}},
		{"TokenSystemCode", obs(srCl(srCode, "", srTV(srLOINC, "8867-4"))), []string{"o1", "o2", "o4"}},
		{"TokenWrongSystem", obs(srCl(srCode, "", srTV("http://snomed.info/sct", "8867-4"))), nil},
		{"TokenNoSystem", obs(srCl(srCode, "", srTV("", "local-1"))), []string{"o7"}},
		{"TokenNoSystemExcludesSystems", obs(srCl(srCode, "", srTV("", "8867-4"))), nil},
		{"TokenSystemOnly", obs(srCl(srCode, "", srTV(srLOINC, ""))), []string{"o1", "o2", "o3", "o4", "o5"}},
		{"TokenOr", obs(srCl(srCode, "", search.Value{Code: "8867-4"}, search.Value{Code: "local-1"})), []string{"o1", "o2", "o4", "o7"}},
		{"TokenAnd", obs(srCl(srCode, "", search.Value{Code: "8867-4"}), srCl(srStatus, "", search.Value{Code: "final"})), []string{"o1", "o4"}},
		{"TokenNot", obs(srCl(srCode, "not", search.Value{Code: "8867-4"})), []string{"o3", "o5", "o6", "o7"}},
		{"TokenText", obs(srCl(srCode, "text", search.Value{Text: "heart"})), []string{"o1", "o2", "o4"}},
		{"TokenTextInside", obs(srCl(srCode, "text", search.Value{Text: "weight"})), []string{"o3", "o5"}},
		{"TokenOfType", pat(srCl(srIdentifier, "of-type", search.Value{TypeSystem: srMR, TypeCode: "MR", Code: "111"})), []string{"p1"}},
		{"TokenIdentifier", pat(srCl(srIdentifier, "", search.Value{Code: "111"})), []string{"p1", "p3"}},
		{"StringPrefix", pat(srCl(srName, "", search.Value{Text: "riv"})), []string{"p1", "p2"}},
		{"StringPrefixAnyName", pat(srCl(srName, "", search.Value{Text: "an"})), []string{"p1"}},
		{"StringAccents", pat(srCl(srName, "", search.Value{Text: "mul"})), []string{"p3"}},
		{"StringExact", pat(srCl(srName, "exact", search.Value{Exact: "Rivera"})), []string{"p1"}},
		{"StringExactCase", pat(srCl(srName, "exact", search.Value{Exact: "rivera"})), nil},
		{"StringExactAccent", pat(srCl(srName, "exact", search.Value{Exact: "Müller"})), []string{"p3"}},
		{"StringContains", pat(srCl(srName, "contains", search.Value{Text: "ll"})), []string{"p3"}},
		{"StringMissing", pat(srCl(srName, "missing", search.Value{Missing: true})), []string{"p5"}},
		{"URIEquals", srQ("ValueSet", srCl(srURL, "", search.Value{Code: "http://example.org/fhir/ValueSet/a"})), []string{"vs1"}},
		{"URIBelow", srQ("ValueSet", srCl(srURL, "below", search.Value{Code: "http://example.org/fhir"})), []string{"vs1", "vs2"}},
		{"URIAbove", srQ("ValueSet", srCl(srURL, "above", search.Value{Code: "http://example.org/fhir/ValueSet/a/b/c"})), []string{"vs1", "vs2"}},
		{"DateEqMonth", pat(srCl(srBirthdate, "", srDV("", mlo, mhi))), []string{"p1", "p2"}},
		{"DateEqDay", pat(srCl(srBirthdate, "", srDV(search.EQ, d1lo, d1hi))), []string{"p1"}},
		{"DateNe", pat(srCl(srBirthdate, "", srDV(search.NE, d1lo, d1hi))), []string{"p2", "p3", "p4"}},
		{"DateGt", pat(srCl(srBirthdate, "", srDV(search.GT, d1lo, d1hi))), []string{"p2", "p3", "p4"}},
		{"DateLt", pat(srCl(srBirthdate, "", srDV(search.LT, d1lo, d1hi))), []string{"p2"}},
		{"DateGe", pat(srCl(srBirthdate, "", srDV(search.GE, d1lo, d1hi))), []string{"p1", "p2", "p3", "p4"}},
		{"DateLe", pat(srCl(srBirthdate, "", srDV(search.LE, d1lo, d1hi))), []string{"p1", "p2"}},
		{"DateSa", pat(srCl(srBirthdate, "", srDV(search.SA, mlo, mhi))), []string{"p3", "p4"}},
		{"DateEb", pat(srCl(srBirthdate, "", srDV(search.EB, y90lo, y90hi))), []string{"p1", "p2"}},
		{"DateAp", pat(srCl(srBirthdate, "", srDV(search.AP, y00lo, y00hi))), []string{"p4"}},
		{"DateRangeAnd", pat(srCl(srBirthdate, "", srDV(search.GE, y80lo, y80hi)), srCl(srBirthdate, "", srDV(search.LT, y90lo, y90hi))), []string{"p1", "p2"}},
		{"DateMissing", pat(srCl(srBirthdate, "missing", search.Value{Missing: true})), []string{"p5"}},
		{"DateNotMissing", obs(srCl(srDate, "missing", search.Value{Missing: false})), []string{"o1", "o2", "o3", "o4"}},
		{"QuantityEq", obs(srCl(srValueQty, "", srNV("", 72, 1))), []string{"o1"}},
		{"QuantityGt", obs(srCl(srValueQty, "", srNV(search.GT, 80, 1))), []string{"o2"}},
		{"QuantityGtUnit", obs(srCl(srValueQty, "", func() search.Value {
			v := srNV(search.GT, 70, 1)
			v.System, v.Code = srUCUM, "/min"
			return v
		}())), []string{"o1", "o2"}},
		{"QuantityLtCodeOnly", obs(srCl(srValueQty, "", func() search.Value {
			v := srNV(search.LT, 80, 1)
			v.Code = "kg"
			return v
		}())), []string{"o5"}},
		{"QuantityLe", obs(srCl(srValueQty, "", srNV(search.LE, 60, 1))), []string{"o4"}},
		{"QuantityGe", obs(srCl(srValueQty, "", srNV(search.GE, 80, 1))), []string{"o2", "o3"}},
		{"QuantityAp", obs(srCl(srValueQty, "", srNV(search.AP, 95, 1))), []string{"o2"}},
		{"QuantityNe", obs(srCl(srValueQty, "", srNV(search.NE, 72, 1))), []string{"o2", "o3", "o4", "o5"}},
		{"QuantitySaEb", obs(srCl(srValueQty, "", srNV(search.SA, 60, 1)), srCl(srValueQty, "", srNV(search.EB, 100, 1))), []string{"o1", "o3", "o5"}},
		{"Number", srQ("RiskAssessment", srCl(srProb, "", srNV(search.GT, 0.5, 0.1))), []string{"ra2"}},
		{"NumberEqPrecision", srQ("RiskAssessment", srCl(srProb, "", srNV("", 0.25, 0.01))), []string{"ra1"}},
		{"RefTypeID", obs(srCl(srSubject, "", search.Value{RefType: "Patient", RefID: "p1"})), []string{"o1", "o2"}},
		{"RefIDOnly", obs(srCl(srSubject, "", search.Value{RefID: "p1"})), []string{"o1", "o2"}},
		{"RefTypeModifier", obs(srCl(srSubject, "Patient", search.Value{RefID: "p1"})), []string{"o1", "o2"}},
		{"RefOtherTypeModifier", obs(srCl(srSubject, "Group", search.Value{RefID: "p1"})), nil},
		{"RefAbsoluteURL", obs(srCl(srSubject, "", search.Value{Code: "http://other.org/fhir/Patient/9"})), []string{"o6"}},
		{"RefOr", obs(srCl(srSubject, "", search.Value{RefType: "Patient", RefID: "p2"}, search.Value{RefType: "Group", RefID: "g1"})), []string{"o3", "o7"}},
		{"RefMissing", obs(srCl(srSubject, "missing", search.Value{Missing: true})), []string{"o5"}},
		{"RefAndToken", obs(srCl(srSubject, "", search.Value{RefType: "Patient", RefID: "p1"}), srCl(srCode, "", srTV(srLOINC, "8867-4")),
			srCl(srStatus, "", search.Value{Code: "final"})), []string{"o1"}},
		{"Chain", obs(search.Clause{Param: srSubject, Chain: &search.Chain{Type: "Patient", Clause: srCl(srName, "", search.Value{Text: "rivera"})}}), []string{"o1", "o2"}},
		{"ChainPrefix", obs(search.Clause{Param: srSubject, Chain: &search.Chain{Type: "Patient", Clause: srCl(srName, "", search.Value{Text: "riv"})}}), []string{"o1", "o2", "o3"}},
		{"ChainToken", obs(search.Clause{Param: srSubject, Chain: &search.Chain{Type: "Patient", Clause: srCl(srIdentifier, "", srTV("urn:mrn", "222"))}}), []string{"o3"}},
		{"Has", pat(search.Clause{Has: &search.Has{Type: "Observation", RefParam: srPatient, Clause: srCl(srCode, "", search.Value{Code: "29463-7"})}}), []string{"p2"}},
		{"HasAnd", pat(search.Clause{Has: &search.Has{Type: "Observation", RefParam: srPatient, Clause: srCl(srCode, "", search.Value{Code: "8867-4"})}},
			srCl(srGender, "", search.Value{Code: "female"})), []string{"p1", "p3"}},
		{"Composite", obs(srCl(srCodeValue, "", search.Value{Parts: []search.Value{srTV(srLOINC, "8867-4"), srNV(search.GT, 90, 1)}})), []string{"o2"}},
		{"CompositeSameRow", obs(srCl(srCodeValue, "", search.Value{Parts: []search.Value{{Code: "29463-7"}, srNV(search.LT, 65, 1)}})), nil},
		{"ID", obs(srCl(srID, "", search.Value{Code: "o1"}, search.Value{Code: "o3"})), []string{"o1", "o3"}},
		{"LastUpdated", obs(srCl(srLastUpd, "", srDV(search.GE, srT0.Add(10*time.Second), srT0.Add(10*time.Second)))), []string{"o4", "o5", "o6", "o7"}},
		{"LastUpdatedLt", obs(srCl(srLastUpd, "", srDV(search.LT, srT0.Add(9*time.Second), srT0.Add(9*time.Second)))), []string{"o1", "o2"}},
		{"Compartment", &search.Query{Type: "Observation", Compartment: &search.Compartment{Type: "Patient", ID: "p1", Params: []*search.Param{srSubject, srPerformer}}},
			[]string{"o1", "o2"}},
		{"CompartmentAndClause", &search.Query{Type: "Observation", Clauses: []search.Clause{srCl(srStatus, "", search.Value{Code: "final"})},
			Compartment: &search.Compartment{Type: "Patient", ID: "p1", Params: []*search.Param{srSubject, srPerformer}}}, []string{"o1"}},
		{"CompartmentPractitioner", &search.Query{Type: "Observation", Compartment: &search.Compartment{Type: "Practitioner", ID: "pr1", Params: []*search.Param{srPerformer}}},
			[]string{"o2"}},
	}
}

// srWalk returns every match of q, following Next to the end.
func srWalk(t *testing.T, s search.Searcher, q *search.Query) []fhir.Version {
	t.Helper()
	var out []fhir.Version
	var cur *search.Cursor
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("more than 1000 pages")
		}
		res, err := s.Search(t.Context(), fhir.DefaultTenant, q, cur)
		if err != nil {
			t.Fatalf("search page %d: %v", page, err)
		}
		out = append(out, res.Matches...)
		if res.Next == nil {
			return out
		}
		cur = res.Next
	}
}

func srIDs(vs []fhir.Version) []string {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return ids
}

// srExpect runs q with a page size of 2 (so every case pages) and
// compares the ids, in order if q sorts.
func srExpect(t *testing.T, s search.Searcher, q *search.Query, want []string) {
	t.Helper()
	qq := *q
	qq.Count = 2
	got := srIDs(srWalk(t, s, &qq))
	if len(q.Sort) == 0 {
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func srKeys(vs []fhir.Version) []string {
	ks := make([]string, len(vs))
	for i, v := range vs {
		ks[i] = v.Type + "/" + v.ID
	}
	slices.Sort(ks)
	return ks
}

func srTestIncludes(t *testing.T, s search.Searcher) {
	ctx := t.Context()
	check := func(name string, q *search.Query, wantMatches, wantIncluded []string) {
		t.Helper()
		res, err := s.Search(ctx, fhir.DefaultTenant, q, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := srKeys(res.Matches); !slices.Equal(got, wantMatches) {
			t.Errorf("%s: matches %v, want %v", name, got, wantMatches)
		}
		if got := srKeys(res.Included); !slices.Equal(got, wantIncluded) {
			t.Errorf("%s: included %v, want %v", name, got, wantIncluded)
		}
		for _, v := range res.Included {
			if len(v.JSON) == 0 || v.VersionID != 1 {
				t.Errorf("%s: included %s/%s has version %d, %d bytes", name, v.Type, v.ID, v.VersionID, len(v.JSON))
			}
		}
	}
	heart := srCl(srCode, "", search.Value{Code: "8867-4"})
	q := srQ("Observation", heart)
	q.Include = []search.Include{{SourceType: "Observation", Param: srSubject}}
	check("include", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"}, []string{"Patient/p1", "Patient/p3"})

	q = srQ("Observation", heart)
	q.Include = []search.Include{{SourceType: "Observation", Param: srSubject}, {SourceType: "Patient", Param: srGP, Iterate: true}}
	check("include iterate", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"},
		[]string{"Patient/p1", "Patient/p3", "Practitioner/pr1"})

	q = srQ("Observation", heart)
	q.Include = []search.Include{{SourceType: "Observation", Param: srSubject}, {SourceType: "Patient", Param: srGP}}
	check("no iterate", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"}, []string{"Patient/p1", "Patient/p3"})

	q = srQ("Observation", heart)
	q.Include = []search.Include{{SourceType: "Observation"}} // Observation:*
	check("include wildcard", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"},
		[]string{"Patient/p1", "Patient/p3", "Practitioner/pr1"})

	q = srQ("Observation", heart)
	q.Include = []search.Include{{SourceType: "Observation", Param: srSubject, TargetType: "Group"}}
	check("include target type", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"}, nil)

	q = srQ("Patient", srCl(srID, "", search.Value{Code: "p1"}))
	q.RevInclude = []search.Include{{SourceType: "Provenance", Param: srTarget}}
	check("revinclude Provenance:target", q, []string{"Patient/p1"}, []string{"Provenance/prov1"})

	q = srQ("Observation", heart)
	q.RevInclude = []search.Include{{SourceType: "Provenance", Param: srTarget}}
	check("revinclude on observations", q, []string{"Observation/o1", "Observation/o2", "Observation/o4"}, []string{"Provenance/prov1"})

	q = srQ("Patient", srCl(srID, "", search.Value{Code: "p1"}))
	q.RevInclude = []search.Include{{SourceType: "Observation", Param: srSubject}, {SourceType: "Provenance", Param: srTarget, Iterate: true}}
	check("revinclude iterate", q, []string{"Patient/p1"}, []string{"Observation/o1", "Observation/o2", "Provenance/prov1"})

	// A match that is also a reference target appears once, as a match.
	q = srQ("Patient", srCl(srID, "", search.Value{Code: "p1"}, search.Value{Code: "p2"}))
	q.Include = []search.Include{{SourceType: "Patient", Param: srGP}}
	q.RevInclude = []search.Include{{SourceType: "Observation", Param: srPatient}}
	check("mixed", q, []string{"Patient/p1", "Patient/p2"}, []string{"Observation/o1", "Observation/o2", "Observation/o3", "Practitioner/pr1"})
}

func srTestSort(t *testing.T, s search.Searcher) {
	pat := func(keys ...search.SortKey) *search.Query {
		q := srQ("Patient")
		q.Sort = keys
		return q
	}
	cases := []struct {
		name string
		q    *search.Query
		want []string
	}{
		{"DateAsc", pat(search.SortKey{Param: srBirthdate}), []string{"p2", "p1", "p3", "p4", "p5"}},
		{"DateDesc", pat(search.SortKey{Param: srBirthdate, Desc: true}), []string{"p4", "p3", "p2", "p1", "p5"}},
		{"TokenThenStringDesc", pat(search.SortKey{Param: srGender}, search.SortKey{Param: srName, Desc: true}), []string{"p1", "p3", "p4", "p2", "p5"}},
		{"StringAsc", pat(search.SortKey{Param: srName}), []string{"p1", "p3", "p2", "p4", "p5"}}, // ana < muller < rivas < smith
		{"IDDesc", pat(search.SortKey{Desc: true}), []string{"p5", "p4", "p3", "p2", "p1"}},
		{"LastUpdatedDesc", pat(search.SortKey{Param: srLastUpd, Desc: true}), []string{"p5", "p4", "p3", "p2", "p1"}},
		{"ReferenceThenID", pat(search.SortKey{Param: srGP}, search.SortKey{}), []string{"p1", "p2", "p3", "p4", "p5"}},
	}
	for _, c := range cases {
		for _, count := range []int{1, 2, 50} {
			q := *c.q
			q.Count = count
			if got := srIDs(srWalk(t, s, &q)); !slices.Equal(got, c.want) {
				t.Errorf("%s (page size %d): %v, want %v", c.name, count, got, c.want)
			}
		}
	}
	q := srQ("Observation", srCl(srCode, "", search.Value{Code: "8867-4"}))
	q.Sort = []search.SortKey{{Param: srValueQty, Desc: true}}
	q.Count = 1
	if got := srIDs(srWalk(t, s, q)); !slices.Equal(got, []string{"o2", "o1", "o4"}) {
		t.Errorf("quantity desc: %v", got)
	}
	q.Sort = []search.SortKey{{Param: srDate}}
	if got := srIDs(srWalk(t, s, q)); !slices.Equal(got, []string{"o4", "o1", "o2"}) {
		t.Errorf("date asc: %v", got)
	}
}

func srTestTotals(t *testing.T, s search.Searcher) {
	ctx := t.Context()
	q := srQ("Observation", srCl(srStatus, "", search.Value{Code: "final"}))
	q.Total, q.Count = "accurate", 2
	res, err := s.Search(ctx, fhir.DefaultTenant, q, nil)
	if err != nil || res.Total != 5 || len(res.Matches) != 2 || res.Next == nil {
		t.Errorf("accurate: total %d, %d matches, next %v, %v; want 5, 2, a cursor", res.Total, len(res.Matches), res.Next, err)
	}
	if res.Next != nil {
		res2, err := s.Search(ctx, fhir.DefaultTenant, q, res.Next)
		if err != nil || res2.Total != 5 || res2.Snapshot != res.Snapshot {
			t.Errorf("page 2: total %d, snapshot %d (first %d), %v", res2.Total, res2.Snapshot, res.Snapshot, err)
		}
	}
	q = srQ("Observation", srCl(srStatus, "", search.Value{Code: "final"}))
	q.Summary = "count"
	res, err = s.Search(ctx, fhir.DefaultTenant, q, nil)
	if err != nil || res.Total != 5 || len(res.Matches) != 0 || res.Next != nil {
		t.Errorf("_summary=count: total %d, %d matches, %v; want 5, none", res.Total, len(res.Matches), err)
	}
	q = srQ("Observation")
	res, err = s.Search(ctx, fhir.DefaultTenant, q, nil)
	if err != nil || res.Total != -1 || len(res.Matches) != 7 || res.Next != nil {
		t.Errorf("default: total %d, %d matches, %v; want -1, 7, last page", res.Total, len(res.Matches), err)
	}
}

func srPut(t *testing.T, s fhir.Store, typ, id string, vid int64, deleted bool, at time.Time, es ...fhir.IndexEntry) {
	t.Helper()
	v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}, VersionID: vid, LastUpdated: at, Deleted: deleted}
	if !deleted {
		v.JSON = srBody(typ, id, vid)
	}
	if err := s.Update(t.Context(), func(tx fhir.Tx) error {
		return tx.Put(t.Context(), v, fhir.Index{Entries: es})
	}); err != nil {
		t.Fatalf("put %s/%s v%d: %v", typ, id, vid, err)
	}
}

func srFind(t *testing.T, s search.Searcher, code string) []string {
	t.Helper()
	vs := srWalk(t, s, srQ("Observation", srCl(srCode, "", search.Value{Code: code})))
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s@%d", v.ID, v.VersionID)
	}
	slices.Sort(out)
	return out
}

func srTestWrites(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	srPut(t, s, "Observation", "a", 1, false, srT0, srTok("code", "", "A", ""))
	srPut(t, s, "Observation", "b", 1, false, srT0, srTok("code", "", "A", ""))
	if got := srFind(t, srch, "A"); !slices.Equal(got, []string{"a@1", "b@1"}) {
		t.Errorf("after create: %v", got)
	}
	srPut(t, s, "Observation", "a", 2, false, srT0, srTok("code", "", "B", ""))
	if got := srFind(t, srch, "A"); !slices.Equal(got, []string{"b@1"}) {
		t.Errorf("A after update: %v", got)
	}
	if got := srFind(t, srch, "B"); !slices.Equal(got, []string{"a@2"}) {
		t.Errorf("B after update: %v", got)
	}
	srPut(t, s, "Observation", "b", 2, true, srT0)
	if got := srFind(t, srch, "A"); len(got) != 0 {
		t.Errorf("A after delete: %v", got)
	}
	if got := srIDs(srWalk(t, srch, srQ("Observation"))); !slices.Equal(got, []string{"a"}) {
		t.Errorf("all after delete: %v", got)
	}
	// Recreated after deletion.
	srPut(t, s, "Observation", "b", 3, false, srT0, srTok("code", "", "A", ""))
	if got := srFind(t, srch, "A"); !slices.Equal(got, []string{"b@3"}) {
		t.Errorf("A after re-create: %v", got)
	}
	// Two versions of one resource in one transaction: the second wins.
	err := s.Update(t.Context(), func(tx fhir.Tx) error {
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: "c"}
		if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: srBody("Observation", "c", 1)},
			fhir.Index{Entries: []fhir.IndexEntry{srTok("code", "", "C", "")}}); err != nil {
			return err
		}
		return tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 2, JSON: srBody("Observation", "c", 2)},
			fhir.Index{Entries: []fhir.IndexEntry{srTok("code", "", "C", ""), srTok("code", "", "D", "")}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := srFind(t, srch, "C"); !slices.Equal(got, []string{"c@2"}) {
		t.Errorf("C after two puts in one tx: %v", got)
	}
	if got := srFind(t, srch, "D"); !slices.Equal(got, []string{"c@2"}) {
		t.Errorf("D after two puts in one tx: %v", got)
	}
	// Duplicate entries in one version are harmless.
	srPut(t, s, "Observation", "d", 1, false, srT0, srTok("code", "", "E", ""), srTok("code", "", "E", ""))
	if got := srFind(t, srch, "E"); !slices.Equal(got, []string{"d@1"}) {
		t.Errorf("duplicate entries: %v", got)
	}
}

func srTestFailedUpdate(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	srPut(t, s, "Observation", "a", 1, false, srT0, srTok("code", "", "A", ""))
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(tx fhir.Tx) error {
		for i, id := range []string{"a", "n"} {
			vid := int64(2 - i)
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}
			if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: vid, JSON: srBody("Observation", id, vid)},
				fhir.Index{Entries: []fhir.IndexEntry{srTok("code", "", "Z", ""), srRef("subject", "Patient", "x")}}); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want boom", err)
	}
	if got := srFind(t, srch, "Z"); len(got) != 0 {
		t.Errorf("index rows of a failed update are visible: %v", got)
	}
	if got := srFind(t, srch, "A"); !slices.Equal(got, []string{"a@1"}) {
		t.Errorf("the failed update closed the previous rows: %v", got)
	}
	q := srQ("Observation", srCl(srSubject, "", search.Value{RefType: "Patient", RefID: "x"}))
	if got := srWalk(t, srch, q); len(got) != 0 {
		t.Errorf("reference rows of a failed update: %v", srIDs(got))
	}
	h, err := srch.HistoryPage(t.Context(), fhir.DefaultTenant, search.HistoryQuery{})
	if err != nil || len(h.Versions) != 1 {
		t.Errorf("history after failed update: %d versions, %v; want 1", len(h.Versions), err)
	}
}

func srTestTxSearch(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	srPut(t, s, "Observation", "a", 1, false, srT0, srTok("identifier", "urn:x", "1", ""))
	q := srQ("Observation", srCl(srIdentifier, "", srTV("urn:x", "2")))
	err := s.Update(t.Context(), func(tx fhir.Tx) error {
		ts, ok := tx.(search.Searcher)
		if !ok {
			return fmt.Errorf("%T does not implement search.Searcher", tx)
		}
		res, err := ts.Search(t.Context(), fhir.DefaultTenant, q, nil)
		if err != nil || len(res.Matches) != 0 {
			return fmt.Errorf("before put: %d matches, %v", len(res.Matches), err)
		}
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: "b"}
		if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: srBody("Observation", "b", 1)},
			fhir.Index{Entries: []fhir.IndexEntry{srTok("identifier", "urn:x", "2", "")}}); err != nil {
			return err
		}
		res, err = ts.Search(t.Context(), fhir.DefaultTenant, q, nil)
		if err != nil || len(res.Matches) != 1 || res.Matches[0].ID != "b" {
			return fmt.Errorf("after put: %v, %v; want b", srIDs(res.Matches), err)
		}
		// Not visible outside before commit.
		out, err := srch.Search(t.Context(), fhir.DefaultTenant, q, nil)
		if err != nil || len(out.Matches) != 0 {
			return fmt.Errorf("outside before commit: %v, %v", srIDs(out.Matches), err)
		}
		// The tx sees the committed resource as well.
		res, err = ts.Search(t.Context(), fhir.DefaultTenant, srQ("Observation"), nil)
		if err != nil || len(res.Matches) != 2 {
			return fmt.Errorf("all in tx: %v, %v; want a, b", srIDs(res.Matches), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := srWalk(t, srch, q); len(got) != 1 {
		t.Errorf("after commit: %v", srIDs(got))
	}
}

// srTestPagingStability walks 20 pages while another goroutine creates,
// updates and deletes matching resources: every resource that matched at
// the first page comes back exactly once, in the version current then,
// and nothing written later shows up.
func srTestPagingStability(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	const n, pageSize = 200, 10
	dlo := srT0.Add(-24 * time.Hour)
	entries := func(code string, i int) []fhir.IndexEntry {
		at := dlo.Add(time.Duration(i) * time.Minute)
		return []fhir.IndexEntry{srTok("code", "", code, ""), srDateE("date", at, at)}
	}
	err := s.Update(t.Context(), func(tx fhir.Tx) error {
		for i := range n {
			id := fmt.Sprintf("m%03d", i)
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}
			if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: srBody("Observation", id, 1)},
				fhir.Index{Entries: entries("M", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	vers := map[string]int64{}
	for i := range n {
		vers[fmt.Sprintf("m%03d", i)] = 1
	}
	writes := 0 // the writer's step count, continued by the second walk
	for _, sorted := range []bool{false, true} {
		q := srQ("Observation", srCl(srCode, "", search.Value{Code: "M"}))
		q.Count = pageSize
		if sorted {
			q.Sort = []search.SortKey{{Param: srDate, Desc: true}}
		}
		res, err := srch.Search(t.Context(), fhir.DefaultTenant, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The set at the first page: the live ones now.
		want := map[string]int64{}
		all := srWalk(t, srch, &search.Query{Type: "Observation", Clauses: q.Clauses, Count: 1000})
		for _, v := range all {
			want[v.ID] = v.VersionID
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var werr error
		wg.Go(func() {
			for i := writes; ; i++ {
				writes = i
				select {
				case <-stop:
					return
				default:
				}
				ctx := context.Background()
				var id string
				var put fhir.Version
				var idx fhir.Index
				switch i % 3 {
				case 0: // a new match, sorting first and last
					id = fmt.Sprintf("new%s%05d", map[bool]string{true: "a", false: "z"}[i%2 == 0], i)
					put = fhir.Version{VersionID: 1}
					idx.Entries = entries("M", n+i)
				case 1: // an update that stops matching
					id = fmt.Sprintf("m%03d", (i*7)%n)
					put = fhir.Version{VersionID: vers[id] + 1}
					idx.Entries = entries("X", i)
				case 2: // a deletion
					id = fmt.Sprintf("m%03d", (i*13+5)%n)
					put = fhir.Version{VersionID: vers[id] + 1, Deleted: true}
				}
				put.Key = fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}
				if !put.Deleted {
					put.JSON = srBody("Observation", id, put.VersionID)
				}
				err := s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, put, idx) })
				if err != nil {
					werr = err
					return
				}
				vers[id] = put.VersionID
				time.Sleep(200 * time.Microsecond)
			}
		})
		time.Sleep(2 * time.Millisecond) // let the writer start
		seen := map[string]int{}
		pages := 0
		for {
			pages++
			for _, v := range res.Matches {
				seen[v.ID]++
				if want[v.ID] != v.VersionID {
					t.Errorf("sorted=%v: %s served at version %d, current at the snapshot was %d", sorted, v.ID, v.VersionID, want[v.ID])
				}
			}
			if res.Next == nil {
				break
			}
			time.Sleep(time.Millisecond)
			if res, err = srch.Search(t.Context(), fhir.DefaultTenant, q, res.Next); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		if werr != nil {
			t.Fatalf("writer: %v", werr)
		}
		if pages < len(want)/pageSize {
			t.Errorf("sorted=%v: %d pages, want at least 20", sorted, pages)
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("sorted=%v: %s seen %d times", sorted, id, seen[id])
			}
		}
		for id := range seen {
			if _, ok := want[id]; !ok {
				t.Errorf("sorted=%v: %s was not a match at the first page", sorted, id)
			}
		}
	}
}

func srTestHistory(t *testing.T, open StoreOpener) {
	s := open(t)
	srch := srAs(t, s)
	at := func(sec int) time.Time { return srT0.Add(time.Duration(sec) * time.Second) }
	srPut(t, s, "Patient", "a", 1, false, at(1))
	srPut(t, s, "Observation", "b", 1, false, at(2))
	srPut(t, s, "Patient", "a", 2, false, at(3))
	srPut(t, s, "Observation", "b", 2, true, at(4))
	srPut(t, s, "Patient", "c", 1, false, at(5))
	srPut(t, s, "Patient", "x", 1, false, at(6))
	if err := s.Update(t.Context(), func(tx fhir.Tx) error {
		return tx.Put(t.Context(), fhir.Version{Key: fhir.Key{Tenant: "other", Type: "Patient", ID: "o"}, VersionID: 1, JSON: []byte("{}")}, fhir.Index{})
	}); err != nil {
		t.Fatal(err)
	}
	walk := func(q search.HistoryQuery) []string {
		t.Helper()
		var out []string
		for page := 0; page < 100; page++ {
			res, err := srch.HistoryPage(t.Context(), fhir.DefaultTenant, q)
			if err != nil {
				t.Fatalf("history %+v: %v", q, err)
			}
			for _, v := range res.Versions {
				s := fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.VersionID)
				if v.Deleted {
					s += "-"
				} else if len(v.JSON) == 0 {
					s += "(no body)"
				}
				out = append(out, s)
			}
			if res.Next == nil {
				return out
			}
			q.Cursor = res.Next
		}
		t.Fatalf("history does not end")
		return nil
	}
	check := func(name string, q search.HistoryQuery, want ...string) {
		t.Helper()
		for _, count := range []int{0, 1, 2} {
			q.Count = count
			if got := walk(q); !slices.Equal(got, want) {
				t.Errorf("%s (page size %d): %v, want %v", name, count, got, want)
			}
		}
	}
	check("system", search.HistoryQuery{}, "Patient/x/1", "Patient/c/1", "Observation/b/2-", "Patient/a/2", "Observation/b/1", "Patient/a/1")
	check("type", search.HistoryQuery{Type: "Patient"}, "Patient/x/1", "Patient/c/1", "Patient/a/2", "Patient/a/1")
	check("since", search.HistoryQuery{Since: at(3).UnixMicro()}, "Patient/x/1", "Patient/c/1", "Observation/b/2-", "Patient/a/2")
	check("type since", search.HistoryQuery{Type: "Observation", Since: at(3).UnixMicro()}, "Observation/b/2-")
	check("at", search.HistoryQuery{At: at(3).Add(time.Millisecond).UnixMicro()}, "Patient/a/2", "Observation/b/1")
	check("at before", search.HistoryQuery{At: at(1).UnixMicro()}, "Patient/a/1")

	// Paging is stable: versions written after the first page stay out.
	res, err := srch.HistoryPage(t.Context(), fhir.DefaultTenant, search.HistoryQuery{Type: "Patient", Count: 2})
	if err != nil || res.Next == nil {
		t.Fatalf("first page: %v, next %v", err, res.Next)
	}
	srPut(t, s, "Patient", "late", 1, false, at(7))
	srPut(t, s, "Patient", "a", 3, false, at(8))
	got := []string{}
	for _, v := range res.Versions {
		got = append(got, fmt.Sprintf("%s/%d", v.ID, v.VersionID))
	}
	q := search.HistoryQuery{Type: "Patient", Count: 2, Cursor: res.Next}
	for q.Cursor != nil {
		r, err := srch.HistoryPage(t.Context(), fhir.DefaultTenant, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r.Versions {
			got = append(got, fmt.Sprintf("%s/%d", v.ID, v.VersionID))
		}
		q.Cursor = r.Next
	}
	if want := []string{"x/1", "c/1", "a/2", "a/1"}; !slices.Equal(got, want) {
		t.Errorf("history paged across writes: %v, want %v", got, want)
	}
}
