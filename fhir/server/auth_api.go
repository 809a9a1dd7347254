package server

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// authAPI serves the gateway's authorization server beside the FHIR API:
// POST /auth/token and GET /auth/jwks. Its answers are OAuth's JSON
// (RFC 6749 section 5.2), not OperationOutcomes.
type authAPI struct{ g *auth.Gateway }

func (authAPI) Prefix() string { return "/auth" }

func (a authAPI) Register(g *gin.RouterGroup) {
	g.POST("/token", gin.WrapH(a.g.TokenHandler()))
	g.GET("/jwks", gin.WrapH(a.g.JWKSHandler()))
}

// Limits: a token request is a small form (the handler bounds it at 64 KiB
// too) and is answered at once.
func (authAPI) Limits() APILimits { return APILimits{MaxBodyBytes: 64 << 10} }

func (authAPI) Fail(c *gin.Context, f Failure) { oauthFail(c, f) }

// wellKnownAPI serves /.well-known/smart-configuration.
type wellKnownAPI struct{ g *auth.Gateway }

func (wellKnownAPI) Prefix() string { return "/.well-known" }

func (a wellKnownAPI) Register(g *gin.RouterGroup) {
	g.GET("/smart-configuration", func(c *gin.Context) {
		b, _ := json.Marshal(a.g.Configuration())
		c.Data(http.StatusOK, "application/json", b)
	})
}

func (wellKnownAPI) Limits() APILimits { return APILimits{MaxBodyBytes: 1} }

func (wellKnownAPI) Fail(c *gin.Context, f Failure) { oauthFail(c, f) }

func oauthFail(c *gin.Context, f Failure) {
	status, code, msg := http.StatusInternalServerError, "server_error", "internal error"
	switch f.Kind {
	case FailNoRoute:
		status, code, msg = http.StatusNotFound, "invalid_request", "no such endpoint"
	case FailNoMethod:
		status, code, msg = http.StatusMethodNotAllowed, "invalid_request", "method not allowed here"
	case FailBusy:
		status, code, msg = http.StatusServiceUnavailable, "temporarily_unavailable", f.Message
	case FailBodyTooLarge:
		status, code, msg = http.StatusRequestEntityTooLarge, "invalid_request", "the request body is too large"
	case FailTimeout:
		status, code, msg = http.StatusServiceUnavailable, "temporarily_unavailable", "the request took too long"
	case FailPanic:
		msg = f.Message
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(status, &smart.TokenError{Code: code, Description: msg})
}

// authAPIs are the APIs of the authorization server, when there is one.
func authAPIs(a *Auth) []API {
	if a == nil || a.Gateway == nil {
		return nil
	}
	return []API{authAPI{a.Gateway}, wellKnownAPI{a.Gateway}}
}

// restSecurity is the CapabilityStatement's rest.security with
// authorization on: the SMART-on-FHIR service and, in the oauth-uris
// extension, the token endpoint (SMART App Launch's discovery through
// /metadata, beside /.well-known/smart-configuration). Nil without.
func (s *Server) restSecurity() *models.CapabilityStatementRestSecurity {
	if s.auth == nil || s.auth.Gateway == nil {
		return nil
	}
	token := s.auth.Gateway.TokenURL()
	cors := len(s.auth.CORSOrigins) > 0
	return &models.CapabilityStatementRestSecurity{
		Cors: &cors,
		Service: []models.CodeableConcept{{Coding: []models.Coding{{
			System: ptr("http://terminology.hl7.org/CodeSystem/restful-security-service"), Code: ptr("SMART-on-FHIR")}}}},
		Description: ptr("SMART Backend Services: client_credentials with a private_key_jwt client assertion (RS384 or ES384) at the token endpoint; every request but /metadata and /.well-known/ needs the bearer token; scopes system/Type.cruds (v2) or .read/.write (v1)"),
		Extension: []models.Extension{{Url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			Extension: []models.Extension{{Url: "token", ValueUri: &token}}}},
	}
}
