package server

import (
	"context"
	"encoding/json"
	"net/http"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// The interactions this server implements for every resource type. The
// CapabilityStatement is generated from this list (and the one below), so
// it claims exactly what the routes do and nothing more.
var typeInteractions = []models.TypeRestfulInteraction{
	models.TypeRestfulInteractionRead,
	models.TypeRestfulInteractionVread,
	models.TypeRestfulInteractionUpdate,
	models.TypeRestfulInteractionPatch, // JSON Patch and FHIRPath Patch (patch.go)
	models.TypeRestfulInteractionDelete,
	models.TypeRestfulInteractionHistoryInstance,
	models.TypeRestfulInteractionCreate,
	models.TypeRestfulInteractionSearchType,
	models.TypeRestfulInteractionHistoryType,
}

var typeOperations = []models.CapabilityStatementRestResourceOperation{
	{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate",
		Documentation: ptr("POST /Type/$validate and POST /Type/id/$validate. mode: create, update, delete (no resource needed), profile; profile: a profile this server holds or a StructureDefinition stored here. An unknown mode or profile is refused (400), never ignored.")},
}

var everythingOperation = models.CapabilityStatementRestResourceOperation{
	Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
	Documentation: ptr("GET only. Parameters: _type (types of the Patient compartment), _since, _count (paged; pages stay put under writes), start and end (care dates: a resource is left out when the values of its type's date search parameter all fall outside [start, end]; the Patient, and resources with no such date, are kept). Any other parameter is refused (400), not ignored.")}

// capabilities handles GET /metadata.
func (s *Server) capabilities(context.Context, *Request) (*Response, error) {
	s.capOnce.Do(func() { s.capJSON = s.buildCapabilityStatement() })
	return &Response{Status: http.StatusOK, Body: s.capJSON}, nil
}

func (s *Server) buildCapabilityStatement() []byte {
	t, f := true, false
	versioned := models.ResourceVersionPolicyVersionedUpdate
	condDelete := models.ConditionalDeleteStatusMultiple
	condRead := models.ConditionalReadStatusNotSupported
	name, title := "KapbridgeFHIRServer", "kapbridge FHIR R4 server"
	desc := "kapbridge: the FHIR R4 API of the ketamine-assisted psychotherapy integration gateway"
	idDoc := "Conditional create (If-None-Exist), update (PUT ?criteria), patch (PATCH ?criteria) and delete (DELETE ?criteria) take search criteria, always strictly (an unknown parameter is refused). " +
		"A conditional delete removes every match, at most 100 (more: 412, nothing deleted). " +
		"PATCH takes application/json-patch+json (JSON Patch) or a Parameters resource (FHIRPath Patch), with If-Match."
	revIncludes := map[string][]string{} // target type -> "Source:param"
	for _, src := range fhir.ResourceTypes() {
		for _, p := range search.ParamsFor(src) {
			if p.Type != search.Reference {
				continue
			}
			for _, tgt := range p.Targets {
				revIncludes[tgt] = append(revIncludes[tgt], src+":"+p.Code)
			}
		}
	}
	var resources []models.CapabilityStatementRestResource
	for _, typ := range fhir.ResourceTypes() {
		var rt models.ResourceType
		if err := json.Unmarshal([]byte(`"`+typ+`"`), &rt); err != nil {
			// The models know every R4 type; a mismatch would be a bug in
			// the generated tables, so leave the type out rather than lie.
			s.log.Warn("resource type unknown to the models", "type", typ)
			continue
		}
		r := models.CapabilityStatementRestResource{
			Type:              rt,
			Profile:           ptr("http://hl7.org/fhir/StructureDefinition/" + typ),
			Versioning:        &versioned,
			ReadHistory:       &t,
			UpdateCreate:      &t,
			ConditionalCreate: &t,
			ConditionalUpdate: &t,
			ConditionalRead:   &condRead,
			ConditionalDelete: &condDelete,
			Documentation:     &idDoc,
			Operation:         typeOperations,
			SupportedProfile:  s.conf.profilesFor(typ),
		}
		for _, p := range search.ParamsFor(typ) {
			var pt models.SearchParamType
			if err := json.Unmarshal([]byte(`"`+string(p.Type)+`"`), &pt); err != nil {
				continue
			}
			r.SearchParam = append(r.SearchParam, models.CapabilityStatementRestResourceSearchParam{
				Name: p.Code, Definition: ptr(p.URL), Type: pt})
			if p.Type == search.Reference {
				r.SearchInclude = append(r.SearchInclude, typ+":"+p.Code)
			}
		}
		if len(r.SearchInclude) > 0 {
			r.SearchInclude = append(r.SearchInclude, "*")
		}
		r.SearchRevInclude = revIncludes[typ]
		if typ == "Patient" {
			r.Operation = append(append([]models.CapabilityStatementRestResourceOperation(nil), typeOperations...), everythingOperation)
		}
		for _, code := range typeInteractions {
			r.Interaction = append(r.Interaction, models.CapabilityStatementRestResourceInteraction{Code: code})
		}
		resources = append(resources, r)
	}
	cs := models.CapabilityStatement{
		Name:         &name,
		Title:        &title,
		Status:       models.PublicationStatusActive,
		Experimental: &f,
		Date:         write.FormatInstant(s.started),
		Publisher:    ptr("kapbridge"),
		Kind:         models.CapabilityStatementKindInstance,
		Software:     &models.CapabilityStatementSoftware{Name: "kapbridge", Version: &s.version},
		Implementation: &models.CapabilityStatementImplementation{
			Description: desc, Url: &s.base},
		FhirVersion: models.FHIRVersion4_0_1,
		Format:      []string{"json", mimeFHIRJSON, mimeJSON},
		Rest: []models.CapabilityStatementRest{{
			Mode:        models.RestfulCapabilityModeServer,
			Resource:    resources,
			Interaction: systemInteractions,
			Security:    s.restSecurity(), // auth_api.go
		}},
	}
	out, err := json.Marshal(cs)
	if err != nil {
		panic("kapbridge: CapabilityStatement does not marshal: " + err.Error())
	}
	return out
}

// systemInteractions lists the whole-system interactions served.
var systemInteractions = []models.CapabilityStatementRestInteraction{
	{Code: models.SystemRestfulInteractionTransaction},
	{Code: models.SystemRestfulInteractionBatch},
	{Code: models.SystemRestfulInteractionHistorySystem},
}

func ptr[T any](v T) *T { return &v }
