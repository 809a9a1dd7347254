package ehr

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// testdataDir holds the package's fixtures and golden files.
var ehrTestdata = filepath.Join("..", "..", "testdata", "ehr")

const (
	// The vendor statements are the embedded profiles (profiles.go).
	epicFile    = "profile:epic"
	oracleFile  = "profile:oracle"
	minimalFile = "minimal.capabilitystatement.json"
)

func ehrFixture(t testing.TB, name string) []byte {
	t.Helper()
	if profile, ok := strings.CutPrefix(name, "profile:"); ok {
		b, err := Profile(profile)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := os.ReadFile(filepath.Join(ehrTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustReadCapabilities(t testing.TB, data []byte) *Capabilities {
	t.Helper()
	c, err := ReadCapabilities(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kapbridgeStatement is kapbridge's own CapabilityStatement, as its FHIR
// API on the in-memory store serves it: the full-featured server.
func kapbridgeStatement(t testing.TB) []byte {
	t.Helper()
	h := server.New(server.Config{Store: memstore.New(), Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metadata", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metadata: %d %s", rec.Code, rec.Body)
	}
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// declaredInteractions lists what typ declares, for comparing with sync.md.
func declaredInteractions(c *Capabilities, typ string) string {
	r := c.Resource(typ)
	if r == nil {
		return "-"
	}
	var s []string
	for _, in := range r.Interactions {
		s = append(s, string(in))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// TestRealStatements reads the Epic and Oracle Health statements whole
// (no warning) and checks them against the table of sync.md.
func TestRealStatements(t *testing.T) {
	epic := mustReadCapabilities(t, ehrFixture(t, epicFile))
	oracle := mustReadCapabilities(t, ehrFixture(t, oracleFile))
	for _, c := range []*Capabilities{epic, oracle} {
		if len(c.Warnings) > 0 {
			t.Errorf("%s: warnings %q", c.Name, c.Warnings)
		}
		if c.FHIRVersion != "4.0.1" {
			t.Errorf("%s: fhirVersion %q", c.Name, c.FHIRVersion)
		}
	}
	if epic.Name != "Epic May 2026" || epic.BaseURL != "https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4" {
		t.Errorf("epic: name %q base %q", epic.Name, epic.BaseURL)
	}
	if oracle.Name != "Oracle Health implementation of FHIR on top of Millennium" &&
		!strings.Contains(oracle.Name, "Oracle") && !strings.Contains(oracle.Name, "Cerner") {
		t.Errorf("oracle: name %q", oracle.Name)
	}
	// sync.md, "What real EHRs accept".
	table := []struct{ typ, epic, oracle string }{
		{"CarePlan", "read search-type", "read search-type"},
		{"Questionnaire", "read search-type", "read search-type"},
		{"QuestionnaireResponse", "create read search-type", "read search-type update"},
		{"Observation", "create read search-type update", "create read search-type update"},
		{"DocumentReference", "create read search-type update", "create read search-type update"},
		{"Communication", "create read search-type", "create patch read search-type"},
		{"MedicationAdministration", "read search-type", "read search-type"},
		{"Provenance", "read", "create read search-type"},
		{"Flag", "read search-type", "-"},
		{"Encounter", "read search-type", "create patch read search-type"},
		{"Consent", "read search-type", "read search-type"},
		{"Subscription", "-", "-"},
	}
	for _, row := range table {
		if got := declaredInteractions(epic, row.typ); got != row.epic {
			t.Errorf("epic %s: %q, want %q", row.typ, got, row.epic)
		}
		if got := declaredInteractions(oracle, row.typ); got != row.oracle {
			t.Errorf("oracle %s: %q, want %q", row.typ, got, row.oracle)
		}
	}
	for typ := range epic.Resources {
		if epic.ConditionalUpdate(typ) || epic.ConditionalCreate(typ) || epic.UpdateCreates(typ) || epic.IfMatch(typ) {
			t.Errorf("epic %s: a conditional write, update-as-create or If-Match is not declared", typ)
		}
	}
	for typ := range oracle.Resources {
		if oracle.ConditionalUpdate(typ) || oracle.ConditionalCreate(typ) || oracle.UpdateCreates(typ) || oracle.IfMatch(typ) {
			t.Errorf("oracle %s: a conditional write, update-as-create or If-Match is not declared", typ)
		}
	}
	if len(epic.SystemInteractions) != 0 {
		t.Errorf("epic system interactions %v, want none", epic.SystemInteractions)
	}
	if !oracle.Allows("", InteractionBatch) || oracle.Allows("", InteractionTransaction) {
		t.Errorf("oracle: want batch only, got %v", oracle.SystemInteractions)
	}
	// Identifier search, which the write plan relies on.
	for _, typ := range []string{"Observation", "DocumentReference", "Communication", "QuestionnaireResponse", "Condition", "Patient"} {
		if !epic.Searchable(typ, "identifier") {
			t.Errorf("epic: %s?identifier not searchable", typ)
		}
	}
	for _, typ := range []string{"Observation", "DocumentReference", "Communication", "QuestionnaireResponse", "Provenance"} {
		if oracle.Searchable(typ, "identifier") {
			t.Errorf("oracle: %s?identifier declared searchable", typ)
		}
	}
	if !oracle.Searchable("Observation", "patient") || !oracle.Searchable("Encounter", "identifier") {
		t.Error("oracle: Observation?patient or Encounter?identifier not searchable")
	}
	if epic.Searchable("Provenance", "identifier") {
		t.Error("epic: Provenance has no search-type")
	}
	if typ, _ := epic.SearchParamType("Observation", "date"); typ != "date" {
		t.Errorf("epic Observation date: type %q", typ)
	}
	if !epic.Operation("Patient", "$match") || epic.Operation("Patient", "everything") || oracle.Operation("Patient", "match") {
		t.Error("Patient/$match: declared by Epic only")
	}
	if !slices.Equal(oracle.PatchFormats, []string{"application/json-patch+json"}) {
		t.Errorf("oracle patch formats %v", oracle.PatchFormats)
	}
	// Security: both name SMART and a token endpoint.
	if !epic.Security.SMART() || epic.Security.TokenURL() != "https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token" {
		t.Errorf("epic security %+v", epic.Security)
	}
	if !slices.Equal(epic.Security.Services, []string{"OAuth", "SMART-on-FHIR", "Basic"}) || !epic.Security.CORS {
		t.Errorf("epic services %v cors %v", epic.Security.Services, epic.Security.CORS)
	}
	if !oracle.Security.SMART() || !strings.HasPrefix(oracle.Security.TokenURL(), "https://authorization.cerner.com/tenants/") ||
		oracle.Security.OAuthURIs["introspect"] != "https://authorization.cerner.com/tokeninfo" {
		t.Errorf("oracle security %+v", oracle.Security)
	}
}

// TestKapbridgeStatement: kapbridge's own statement is the full-featured
// server: every type writable, conditional update, If-Match, transaction.
func TestKapbridgeStatement(t *testing.T) {
	c := mustReadCapabilities(t, kapbridgeStatement(t))
	if len(c.Warnings) > 0 {
		t.Errorf("warnings %q", c.Warnings)
	}
	for _, typ := range []string{"CarePlan", "QuestionnaireResponse", "Observation", "MedicationAdministration", "Flag", "Encounter", "Consent", "DocumentReference"} {
		for _, in := range []Interaction{InteractionCreate, InteractionUpdate, InteractionRead, InteractionVRead, InteractionSearchType, InteractionHistoryInstance, InteractionDelete} {
			if !c.Allows(typ, in) {
				t.Errorf("%s %s not declared", typ, in)
			}
		}
		if !c.ConditionalUpdate(typ) || !c.IfMatch(typ) || !c.UpdateCreates(typ) || !c.Searchable(typ, "identifier") {
			t.Errorf("%s: conditional update %v, If-Match %v, update-as-create %v, identifier %v", typ,
				c.ConditionalUpdate(typ), c.IfMatch(typ), c.UpdateCreates(typ), c.Searchable(typ, "identifier"))
		}
	}
	if !c.Allows("", InteractionTransaction) || !c.Allows("", InteractionBatch) || !c.Allows("", InteractionHistorySystem) {
		t.Errorf("system interactions %v", c.SystemInteractions)
	}
	// Provenance has no identifier element, so no identifier search.
	if !c.UpdateCreates("Provenance") || c.Searchable("Provenance", "identifier") || !c.Searchable("Provenance", "target") {
		t.Error("Provenance: update-as-create and target search, no identifier")
	}
	// kapbridge serves PATCH (issue 13); a plan still prefers PUT.
	if !c.Allows("Observation", InteractionPatch) {
		t.Error("kapbridge declares patch, but it was not read")
	}
	if !c.Operation("Observation", "validate") || !c.Operation("Patient", "$everything") {
		t.Error("$validate / Patient $everything not declared")
	}
}

// TestReadLeniently: a code the models do not know leaves out its element,
// with a warning, and nothing else.
func TestReadLeniently(t *testing.T) {
	doc := `{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1",
	 "format":["json", 7],
	 "contact":[{"telecom":[{"system":"carrier-pigeon","value":"x"}]}],
	 "rest":[
	  {"mode":"client"},
	  {"mode":"server",
	   "interaction":[{"code":"transaction"},{"code":"read"},{"code":"batch-ish"},"batch"],
	   "searchParam":[{"name":"_lastUpdated","type":"date"},{"name":"_text"}],
	   "resource":[
	    {"type":"Observation","interaction":[{"code":"create"},{"code":"update-conditional"},{"code":"transaction"},{"code":"search-type"}],
	     "versioning":"sometimes","readHistory":"yes","conditionalUpdate":true,"updateCreate":false,
	     "searchParam":[{"name":"identifier","type":"token"},{"name":"subject","type":"resource"},{"type":"token"}]},
	    {"type":"ActorDefinition","interaction":[{"code":"read"}]},
	    {"interaction":[{"code":"read"}]},
	    {"type":"Observation","interaction":[{"code":"read"}]},
	    "Flag"
	   ]},
	  {"mode":"server","resource":[{"type":"Flag","interaction":[{"code":"create"}]}]}
	 ]}`
	c, err := ReadCapabilities([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := declaredInteractions(c, "Observation"); got != "create read search-type" {
		t.Errorf("Observation: %q", got)
	}
	if c.ConditionalUpdate("Observation") {
		t.Error("conditional update declared without update")
	}
	if r := c.Resource("Observation"); r.Versioning != "" || r.ReadHistory || !r.ConditionalUpdate || r.UpdateCreate {
		t.Errorf("Observation flags %+v", r)
	}
	if !c.Searchable("Observation", "identifier") || c.Searchable("Observation", "subject") || !c.Searchable("Observation", "_lastUpdated") {
		t.Error("search parameters: identifier and _lastUpdated only")
	}
	if c.Resource("Flag") != nil || c.Resource("ActorDefinition") != nil || len(c.Resources) != 1 {
		t.Errorf("resources %v", c.Resources)
	}
	if !slices.Equal(c.SystemInteractions, []Interaction{InteractionTransaction}) {
		t.Errorf("system interactions %v", c.SystemInteractions)
	}
	if !slices.Equal(c.Formats, []string{"json"}) {
		t.Errorf("formats %v", c.Formats)
	}
	want := []string{
		"the R4 models cannot read the whole statement",
		`rest[1].interaction[1].code: "read" is not a system-level interaction`,
		`rest[1].interaction[2].code: code "batch-ish" is unknown`,
		"rest[1].interaction[3]: not an object",
		`rest[1].searchParam[1]: parameter "_text" has no known type`,
		`rest[1].resource[0] (Observation).interaction[1].code: code "update-conditional" is unknown`,
		`rest[1].resource[0] (Observation).interaction[2].code: "transaction" is not a type-level interaction`,
		`rest[1].resource[0] (Observation).versioning: code "sometimes" is unknown`,
		"rest[1].resource[0] (Observation).readHistory: not a boolean",
		`rest[1].resource[0] (Observation).searchParam[1].type: code "resource" is unknown`,
		"rest[1].resource[0] (Observation).searchParam[2]: no name",
		`rest[1].resource[1].type: code "ActorDefinition" is unknown`,
		"rest[1].resource[2]: no known resource type",
		"rest[1].resource[4]: not an object",
		"format[1]: not a string",
		"rest[2]: a second server entry",
		"Observation is described twice",
	}
	all := strings.Join(c.Warnings, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no warning %q in\n%s", w, all)
		}
	}
}

func TestReadRefused(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      error
	}{
		{"not json", `{"resourceType":`, ErrNotCapabilityStatement},
		{"two values", `{"resourceType":"CapabilityStatement"} {}`, ErrNotCapabilityStatement},
		{"trailing brace", `{"resourceType":"CapabilityStatement","rest":[{"mode":"server"}]}}`, ErrNotCapabilityStatement},
		{"trailing space", "{\"resourceType\":\"CapabilityStatement\",\"rest\":[{\"mode\":\"server\"}]} \n", nil},
		{"array", `[]`, ErrNotCapabilityStatement},
		{"patient", `{"resourceType":"Patient"}`, ErrNotCapabilityStatement},
		{"no rest", `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1"}`, ErrNotCapabilityStatement},
		{"client only", `{"resourceType":"CapabilityStatement","rest":[{"mode":"client","resource":[{"type":"Patient"}]}]}`, ErrNotCapabilityStatement},
		{"unknown mode", `{"resourceType":"CapabilityStatement","rest":[{"mode":"Server"}]}`, ErrNotCapabilityStatement},
		{"stu3", `{"resourceType":"CapabilityStatement","fhirVersion":"3.0.2","rest":[{"mode":"server"}]}`, ErrNotR4},
		{"dstu2 version kind", `{"resourceType":"CapabilityStatement","fhirVersion":1,"rest":[{"mode":"server"}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCapabilities([]byte(tc.doc))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := ReadCapabilities(make([]byte, MaxStatementBytes+1)); !errors.Is(err, ErrNotCapabilityStatement) {
		t.Errorf("oversized: %v", err)
	}
}
