package server

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/kapbridge/kapbridge/fhir"
)

// The interactions this server implements for every resource type. The
// CapabilityStatement is generated from this list (and the one below), so
// it claims exactly what the routes do and nothing more.
var typeInteractions = []models.TypeRestfulInteraction{
	models.TypeRestfulInteractionRead,
	models.TypeRestfulInteractionVread,
	models.TypeRestfulInteractionUpdate,
	models.TypeRestfulInteractionDelete,
	models.TypeRestfulInteractionHistoryInstance,
	models.TypeRestfulInteractionCreate,
}

var typeOperations = []models.CapabilityStatementRestResourceOperation{
	{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
}

// capabilities handles GET /metadata.
func (s *Server) capabilities(c *gin.Context) {
	s.capOnce.Do(func() { s.capJSON = s.buildCapabilityStatement() })
	writeJSON(c, http.StatusOK, s.capJSON)
}

func (s *Server) buildCapabilityStatement() []byte {
	t, f := true, false
	versioned := models.ResourceVersionPolicyVersionedUpdate
	notSupported := models.ConditionalDeleteStatusNotSupported
	condRead := models.ConditionalReadStatusNotSupported
	name, title := "KapbridgeFHIRServer", "kapbridge FHIR R4 server"
	desc := "kapbridge: the FHIR R4 API of the ketamine-assisted psychotherapy integration gateway"
	idDoc := "Conditional create (If-None-Exist) and conditional update (PUT ?identifier=) accept one criterion: identifier=system|value."
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
			ConditionalDelete: &notSupported,
			Documentation:     &idDoc,
			Operation:         typeOperations,
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
		Date:         formatInstant(s.started),
		Publisher:    ptr("kapbridge"),
		Kind:         models.CapabilityStatementKindInstance,
		Software:     &models.CapabilityStatementSoftware{Name: "kapbridge", Version: &s.version},
		Implementation: &models.CapabilityStatementImplementation{
			Description: desc, Url: &s.base},
		FhirVersion: models.FHIRVersion4_0_1,
		Format:      []string{"json", mimeFHIRJSON, mimeJSON},
		Rest: []models.CapabilityStatementRest{{
			Mode:     models.RestfulCapabilityModeServer,
			Resource: resources,
		}},
	}
	out, err := json.Marshal(cs)
	if err != nil {
		panic("kapbridge: CapabilityStatement does not marshal: " + err.Error())
	}
	return out
}

func ptr[T any](v T) *T { return &v }
