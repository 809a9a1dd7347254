package ehr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Interaction is a FHIR R4 RESTful interaction code
// (http://hl7.org/fhir/restful-interaction): the type-level ones a
// CapabilityStatement lists under rest.resource.interaction, the
// system-level ones under rest.interaction.
type Interaction string

// Type-level interactions (R4 value set type-restful-interaction).
const (
	InteractionRead            Interaction = "read"
	InteractionVRead           Interaction = "vread"
	InteractionUpdate          Interaction = "update"
	InteractionPatch           Interaction = "patch"
	InteractionDelete          Interaction = "delete"
	InteractionHistoryInstance Interaction = "history-instance"
	InteractionHistoryType     Interaction = "history-type"
	InteractionCreate          Interaction = "create"
	InteractionSearchType      Interaction = "search-type"
)

// System-level interactions (R4 value set system-restful-interaction).
const (
	InteractionTransaction   Interaction = "transaction"
	InteractionBatch         Interaction = "batch"
	InteractionSearchSystem  Interaction = "search-system"
	InteractionHistorySystem Interaction = "history-system"
)

// System reports whether in is a system-level interaction.
func (in Interaction) System() bool {
	switch in {
	case InteractionTransaction, InteractionBatch, InteractionSearchSystem, InteractionHistorySystem:
		return true
	}
	return false
}

func (in Interaction) typeLevel() bool {
	switch in {
	case InteractionRead, InteractionVRead, InteractionUpdate, InteractionPatch, InteractionDelete,
		InteractionHistoryInstance, InteractionHistoryType, InteractionCreate, InteractionSearchType:
		return true
	}
	return false
}

// Versioning policies of rest.resource.versioning (R4 versioning-policy).
const (
	VersioningNone          = "no-version"
	VersioningVersioned     = "versioned"
	VersioningVersionUpdate = "versioned-update" // the server checks If-Match on updates
)

// SearchParam is a search parameter a statement declares.
type SearchParam struct {
	Name string // e.g. "identifier", "_lastUpdated"
	Type string // number, date, string, token, reference, composite, quantity, uri, special
}

// ResourceCapability is what a statement declares for one resource type.
type ResourceCapability struct {
	Type         string
	Interactions []Interaction // type-level codes, in the order declared, once each
	// Versioning is "" when not declared, else one of the Versioning
	// constants.
	Versioning string
	// The booleans are false when not declared: what a statement does not
	// claim, kapbridge does not count on.
	ReadHistory       bool
	UpdateCreate      bool // an update (PUT) may create a resource with the client's id
	ConditionalCreate bool // If-None-Exist on create
	ConditionalUpdate bool // PUT Type?criteria
	ConditionalRead   string
	// ConditionalDelete is "", not-supported, single or multiple.
	ConditionalDelete string
	SearchParams      []SearchParam
	Operations        []string // operation names without "$"
	Profile           string
	SupportedProfiles []string
}

// Has reports whether the resource type declares interaction in.
func (r *ResourceCapability) Has(in Interaction) bool {
	return r != nil && slices.Contains(r.Interactions, in)
}

// Security is what rest.security declares.
type Security struct {
	CORS bool
	// Services are the restful-security-service codes (OAuth,
	// SMART-on-FHIR, Basic, ...); an uncoded service is given by its text.
	Services []string
	// OAuthURIs are the SMART oauth-uris extension's URLs by name
	// (token, authorize, register, manage, introspect, revoke).
	OAuthURIs   map[string]string
	Description string
}

// SMART reports whether the statement names the SMART-on-FHIR service.
func (s Security) SMART() bool {
	return slices.ContainsFunc(s.Services, func(c string) bool { return strings.EqualFold(c, "SMART-on-FHIR") })
}

// TokenURL is the token endpoint the oauth-uris extension declares, or "".
func (s Security) TokenURL() string { return s.OAuthURIs["token"] }

// Capabilities is the server side of one FHIR R4 CapabilityStatement, as
// kapbridge reads it to plan writes and to play an EHR in the sandbox.
// The zero value declares nothing.
type Capabilities struct {
	// Raw is the statement exactly as received (the sandbox serves it).
	Raw []byte
	// Name says whose statement it is, for messages: the software name
	// and version, else the title or name, else the implementation URL.
	Name        string
	BaseURL     string // implementation.url
	FHIRVersion string
	Formats     []string
	// PatchFormats are the mime types a patch may use
	// (application/json-patch+json, application/fhir+json ...).
	PatchFormats []string
	// Resources by type; a type not listed allows no interaction at all.
	Resources map[string]*ResourceCapability
	// SystemInteractions: transaction, batch, search-system,
	// history-system, as declared.
	SystemInteractions []Interaction
	SystemOperations   []string      // rest.operation names without "$"
	SystemSearchParams []SearchParam // rest.searchParam: apply to every type
	Security           Security
	// Warnings say what the reading left out: codes the R4 models do not
	// know, values of the wrong JSON kind, repeated entries.
	Warnings []string
}

// Errors of ReadCapabilities; test with errors.Is.
var (
	// ErrNotCapabilityStatement: the document is not JSON, not a
	// CapabilityStatement, or declares no FHIR server.
	ErrNotCapabilityStatement = errors.New("ehr: not a CapabilityStatement of a FHIR server")
	// ErrNotR4: the statement declares a FHIR version other than 4.x.
	ErrNotR4 = errors.New("ehr: not a FHIR R4 CapabilityStatement")
)

// MaxStatementBytes bounds a statement ReadCapabilities accepts; the real
// ones are about 100 KB.
const MaxStatementBytes = 8 << 20

// Resource returns what the statement declares for typ, or nil.
func (c *Capabilities) Resource(typ string) *ResourceCapability {
	if c == nil {
		return nil
	}
	return c.Resources[typ]
}

// Allows reports whether the statement declares interaction in: a
// system-level one (transaction, batch, search-system, history-system)
// whatever typ, else the type-level one on typ.
func (c *Capabilities) Allows(typ string, in Interaction) bool {
	if c == nil {
		return false
	}
	if in.System() {
		return slices.Contains(c.SystemInteractions, in)
	}
	return c.Resource(typ).Has(in)
}

// Searchable reports whether typ can be searched by param: search-type is
// declared on typ and param is declared on typ or for every type.
func (c *Capabilities) Searchable(typ, param string) bool {
	_, ok := c.SearchParamType(typ, param)
	return ok && c.Allows(typ, InteractionSearchType)
}

// SearchParamType returns the declared type of param on typ (or for every
// type), and whether it is declared.
func (c *Capabilities) SearchParamType(typ, param string) (string, bool) {
	if c == nil {
		return "", false
	}
	if r := c.Resource(typ); r != nil {
		for _, p := range r.SearchParams {
			if p.Name == param {
				return p.Type, true
			}
		}
	}
	for _, p := range c.SystemSearchParams {
		if p.Name == param {
			return p.Type, true
		}
	}
	return "", false
}

// ConditionalUpdate reports whether PUT typ?criteria is declared: update
// and conditionalUpdate both.
func (c *Capabilities) ConditionalUpdate(typ string) bool {
	r := c.Resource(typ)
	return r.Has(InteractionUpdate) && r.ConditionalUpdate
}

// ConditionalCreate reports whether a create with If-None-Exist is
// declared.
func (c *Capabilities) ConditionalCreate(typ string) bool {
	r := c.Resource(typ)
	return r.Has(InteractionCreate) && r.ConditionalCreate
}

// UpdateCreates reports whether an update (PUT typ/id) may create a
// resource with an id the client chose.
func (c *Capabilities) UpdateCreates(typ string) bool {
	r := c.Resource(typ)
	return r.Has(InteractionUpdate) && r.UpdateCreate
}

// IfMatch reports whether updates of typ are version-aware: versioning
// versioned-update, so an If-Match header is checked (412 on a mismatch).
func (c *Capabilities) IfMatch(typ string) bool {
	r := c.Resource(typ)
	return r != nil && r.Versioning == VersioningVersionUpdate
}

// Operation reports whether operation name (with or without "$") is
// declared on typ, or, with typ "", at system level.
func (c *Capabilities) Operation(typ, name string) bool {
	if c == nil {
		return false
	}
	name = strings.TrimPrefix(name, "$")
	if typ == "" {
		return slices.Contains(c.SystemOperations, name)
	}
	r := c.Resource(typ)
	return r != nil && slices.Contains(r.Operations, name)
}

// ReadCapabilities reads a CapabilityStatement (JSON). It reads leniently:
// the samply R4 models refuse a whole document for one code they do not
// know, and vendors use such codes, so the parts kapbridge reads are
// first checked one by one (each code against the models' enums, each
// value's JSON kind), what does not pass is left out with a warning, and
// the rest is decoded with the models. A document that is not a
// CapabilityStatement with a server rest entry is refused with
// ErrNotCapabilityStatement, a FHIR version other than 4.x with ErrNotR4.
func ReadCapabilities(data []byte) (*Capabilities, error) {
	if len(data) > MaxStatementBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrNotCapabilityStatement, len(data), MaxStatementBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCapabilityStatement, err)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrNotCapabilityStatement)
	}
	root, ok := doc.(map[string]any)
	if !ok || root["resourceType"] != "CapabilityStatement" {
		return nil, fmt.Errorf("%w: resourceType is not CapabilityStatement", ErrNotCapabilityStatement)
	}
	c := &Capabilities{Raw: data}
	var whole models.CapabilityStatement
	if err := json.Unmarshal(data, &whole); err != nil {
		c.warn("the R4 models cannot read the whole statement (%v): read part by part", err)
	}
	fv, _ := root["fhirVersion"].(string)
	c.FHIRVersion = fv
	switch {
	case fv == "":
		c.warn("fhirVersion is missing: read as R4")
	case !strings.HasPrefix(fv, "4."):
		return nil, fmt.Errorf("%w: fhirVersion %q (kapbridge speaks FHIR R4, 4.0.1)", ErrNotR4, fv)
	}
	proj := c.project(root)
	b, err := json.Marshal(proj)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCapabilityStatement, err)
	}
	var cs models.CapabilityStatement
	if err := json.Unmarshal(b, &cs); err != nil {
		// project keeps only what the models read; reaching here is a
		// gap in it, reported rather than hidden.
		return nil, fmt.Errorf("%w: %v", ErrNotCapabilityStatement, err)
	}
	if err := c.fill(&cs); err != nil {
		return nil, err
	}
	c.Name = statementName(root, &cs)
	return c, nil
}

func (c *Capabilities) warn(format string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...))
}

// fill copies the decoded statement into c: the first server rest entry.
func (c *Capabilities) fill(cs *models.CapabilityStatement) error {
	c.Formats = cs.Format
	c.PatchFormats = cs.PatchFormat
	if cs.Implementation != nil && cs.Implementation.Url != nil {
		c.BaseURL = *cs.Implementation.Url
	}
	var rest *models.CapabilityStatementRest
	for i := range cs.Rest {
		if cs.Rest[i].Mode != models.RestfulCapabilityModeServer {
			continue
		}
		if rest != nil {
			c.warn("rest[%d]: a second server entry; only the first is read", i)
			continue
		}
		rest = &cs.Rest[i]
	}
	if rest == nil {
		return fmt.Errorf("%w: no rest entry with mode server", ErrNotCapabilityStatement)
	}
	for _, in := range rest.Interaction {
		code := Interaction(in.Code.Code())
		if !slices.Contains(c.SystemInteractions, code) {
			c.SystemInteractions = append(c.SystemInteractions, code)
		}
	}
	for _, op := range rest.Operation {
		c.SystemOperations = appendNew(c.SystemOperations, strings.TrimPrefix(op.Name, "$"))
	}
	for _, p := range rest.SearchParam {
		c.SystemSearchParams = append(c.SystemSearchParams, SearchParam{Name: p.Name, Type: p.Type.Code()})
	}
	if s := rest.Security; s != nil {
		c.Security.CORS = s.Cors != nil && *s.Cors
		if s.Description != nil {
			c.Security.Description = *s.Description
		}
		for _, svc := range s.Service {
			name := ""
			for _, cd := range svc.Coding {
				if cd.Code != nil && *cd.Code != "" {
					name = *cd.Code
					break
				}
			}
			if name == "" && svc.Text != nil {
				name = *svc.Text
			}
			if name != "" {
				c.Security.Services = appendNew(c.Security.Services, name)
			}
		}
		for _, ext := range s.Extension {
			if ext.Url != oauthURIsExtension {
				continue
			}
			for _, sub := range ext.Extension {
				v := sub.ValueUri
				if v == nil {
					v = sub.ValueUrl
				}
				if v == nil || sub.Url == "" {
					continue
				}
				if c.Security.OAuthURIs == nil {
					c.Security.OAuthURIs = map[string]string{}
				}
				c.Security.OAuthURIs[sub.Url] = *v
			}
		}
	}
	c.Resources = make(map[string]*ResourceCapability, len(rest.Resource))
	for _, r := range rest.Resource {
		typ := r.Type.Code()
		rc := c.Resources[typ]
		if rc == nil {
			rc = &ResourceCapability{Type: typ}
			c.Resources[typ] = rc
		} else {
			c.warn("%s is described twice; the interactions and search parameters of both are read", typ)
		}
		for _, in := range r.Interaction {
			rc.Interactions = appendNew(rc.Interactions, Interaction(in.Code.Code()))
		}
		if r.Versioning != nil {
			rc.Versioning = r.Versioning.Code()
		}
		rc.ReadHistory = rc.ReadHistory || declaredTrue(r.ReadHistory)
		rc.UpdateCreate = rc.UpdateCreate || declaredTrue(r.UpdateCreate)
		rc.ConditionalCreate = rc.ConditionalCreate || declaredTrue(r.ConditionalCreate)
		rc.ConditionalUpdate = rc.ConditionalUpdate || declaredTrue(r.ConditionalUpdate)
		if r.ConditionalRead != nil {
			rc.ConditionalRead = r.ConditionalRead.Code()
		}
		if r.ConditionalDelete != nil {
			rc.ConditionalDelete = r.ConditionalDelete.Code()
		}
		for _, p := range r.SearchParam {
			rc.SearchParams = append(rc.SearchParams, SearchParam{Name: p.Name, Type: p.Type.Code()})
		}
		for _, op := range r.Operation {
			rc.Operations = appendNew(rc.Operations, strings.TrimPrefix(op.Name, "$"))
		}
		if r.Profile != nil {
			rc.Profile = *r.Profile
		}
		rc.SupportedProfiles = append(rc.SupportedProfiles, r.SupportedProfile...)
	}
	return nil
}

// oauthURIsExtension is the SMART extension on rest.security naming the
// OAuth endpoints (SMART App Launch 1.0; kept by vendors in R4 statements).
const oauthURIsExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

func statementName(root map[string]any, cs *models.CapabilityStatement) string {
	if s := cs.Software; s != nil && s.Name != "" {
		if s.Version != nil && *s.Version != "" {
			return s.Name + " " + *s.Version
		}
		return s.Name
	}
	for _, k := range []string{"title", "name", "url"} {
		if s, ok := root[k].(string); ok && s != "" {
			return s
		}
	}
	if cs.Implementation != nil {
		if cs.Implementation.Url != nil && *cs.Implementation.Url != "" {
			return *cs.Implementation.Url
		}
		if cs.Implementation.Description != "" {
			return cs.Implementation.Description
		}
	}
	return "the CapabilityStatement"
}

func declaredTrue(b *bool) bool { return b != nil && *b }

func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
