// Package audit owns the gateway's audit trail (issue 14): one FHIR
// AuditEvent (type rest) per request to the API, read, search, write or
// refused, saying who (the client, or no one), what (the interaction and
// the resource it named), when, with what outcome, and from which network
// address. Events are written through a Trail, which batches them into
// store transactions off the request path and never drops one: when the
// queue is full, requests wait. They go to the audit tenant of the
// client's practice (auth.AuditTenant), apart from the practice's data,
// append-only: the API refuses every write to AuditEvent.
//
// An AuditEvent carries ids (client, resource, request), never content:
// no query string, no body.
package audit

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Record is one request as audited.
type Record struct {
	When      time.Time
	RequestID string
	Method    string
	// Path is the request path without its query (a query can carry
	// PHI: names, identifiers).
	Path string
	// Status is the HTTP status answered.
	Status int
	// ClientID is the authenticated client, "" for none.
	ClientID string
	// Tenant is the practice whose trail gets the event; "" means the
	// default one (a refused request from no known client).
	Tenant string
	// Address is the client's network address (behind a trusted proxy,
	// the address it forwarded).
	Address string
	// Type and ID name the resource the path names, when it does.
	Type, ID string
	// Bundle is, for a POST of a Bundle at the base, its type ("batch" or
	// "transaction"), when known.
	Bundle string
	// Entry is, for the record of one entry of a batch or transaction, its
	// position in the Bundle (1 the first); 0 for a request. An entry's
	// record has the Bundle request's RequestID, When, client and address,
	// and the entry's own Method, Path (relative to the base), Status
	// (what became of the entry) and resource.
	Entry int
	// Note says more about the outcome: why an entry was not processed
	// (the Bundle refused, the transaction rolled back).
	Note string
}

// Interaction is the FHIR restful-interaction the request was, and the
// AuditEvent action code it maps to.
func (r Record) Interaction() (code, action string) {
	segs := strings.Split(strings.Trim(r.Path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	n := len(segs)
	switch {
	case strings.HasPrefix(r.Path, "/auth/"):
		return "token", "E"
	case strings.HasPrefix(r.Path, "/practice/"):
		if r.Method == http.MethodGet {
			return "practice-read", "R"
		}
		return "practice-write", "U"
	case n == 0 && r.Method == http.MethodPost:
		if r.Bundle == "transaction" {
			return "transaction", "E"
		}
		return "batch", "E" // a batch, or a Bundle not read
	case n >= 1 && strings.HasPrefix(segs[n-1], "$"):
		return "operation", "E"
	case n == 1 && segs[0] == "_history":
		return "history-system", "R"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case n == 1:
			return "search-type", "R"
		case n == 2 && segs[1] == "_history":
			return "history-type", "R"
		case n == 2:
			return "read", "R"
		case n == 3 && segs[2] == "_history":
			return "history-instance", "R"
		case n == 3:
			return "search-compartment", "R"
		default:
			return "vread", "R"
		}
	case http.MethodPost:
		if n == 2 && segs[1] == "_search" {
			return "search-type", "R"
		}
		return "create", "C"
	case http.MethodPut:
		return "update", "U"
	case http.MethodPatch:
		return "patch", "U"
	case http.MethodDelete:
		return "delete", "D"
	}
	return "other", "E"
}

// Outcome is the AuditEvent outcome code of an HTTP status: 0 success, 4
// minor failure (the request was refused or wrong), 8 serious failure
// (the server failed).
func Outcome(status int) string {
	switch {
	case status < 400:
		return "0"
	case status < 500:
		return "4"
	}
	return "8"
}

// Code systems of the AuditEvent.
const (
	sysEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysInteraction = "http://hl7.org/fhir/restful-interaction"
	sysSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	// SysClient identifies a client by its id; SysRequest a request by its
	// X-Request-Id.
	SysClient  = "urn:kapbridge:client"
	SysRequest = "urn:kapbridge:request-id"
	// SysEntry identifies an entry of a batch or transaction: its
	// request's id, "#", its position in the Bundle (1 the first).
	SysEntry = "urn:kapbridge:bundle-entry"
)

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type event struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id,omitempty"`
	Meta         *meta    `json:"meta,omitempty"`
	Type         coding   `json:"type"`
	Subtype      []coding `json:"subtype"`
	Action       string   `json:"action"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome"`
	OutcomeDesc  string   `json:"outcomeDesc"`
	Agent        []agent  `json:"agent"`
	Source       source   `json:"source"`
	Entity       []entity `json:"entity"`
}

type meta struct {
	VersionID   string `json:"versionId"`
	LastUpdated string `json:"lastUpdated"`
}

type agent struct {
	Who       reference `json:"who"`
	Requestor bool      `json:"requestor"`
	Network   *network  `json:"network,omitempty"`
}

type network struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type source struct {
	Observer reference `json:"observer"`
	Type     []coding  `json:"type"`
}

type entity struct {
	What        reference `json:"what"`
	Type        *coding   `json:"type,omitempty"`
	Description string    `json:"description,omitempty"`
}

// JSON is the AuditEvent of r, without id and meta (the store sets them).
func (r Record) JSON() []byte { return r.encode(r.event()) }

// Stored is the AuditEvent of r as stored: with id, and meta as the first
// version written at ts (write.Stamp's layout), so the trail stores it
// without parsing it back (trail.go).
func (r Record) Stored(id string, ts time.Time) []byte {
	ev := r.event()
	ev.ID = id
	ev.Meta = &meta{VersionID: "1", LastUpdated: ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00")}
	return r.encode(ev)
}

func (r Record) encode(ev event) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as fhir.Value.Encode writes strings
	_ = enc.Encode(ev)       // plain strings and structs: always encodes
	return bytes.TrimRight(b.Bytes(), "\n")
}

func (r Record) event() event {
	code, action := r.Interaction()
	who := reference{Display: "unauthenticated"}
	if r.ClientID != "" {
		who = reference{Identifier: &identifier{System: SysClient, Value: r.ClientID}, Display: "client " + r.ClientID}
	}
	ag := agent{Who: who, Requestor: true}
	if r.Address != "" {
		ag.Network = &network{Address: r.Address, Type: "2"} // 2: IP address
	}
	desc := r.Method + " " + r.Path + " answered " + http.StatusText(r.Status) + " (" + itoa(r.Status) + ")"
	reqEntity := entity{What: reference{Identifier: &identifier{System: SysRequest, Value: r.RequestID}},
		Type: &coding{System: sysEntityType, Code: "2", Display: "System Object"}, Description: "the request"}
	if r.Entry > 0 {
		// Linked to the Bundle's own event by the request id they share.
		desc = "Bundle entry " + itoa(r.Entry) + ": " + r.Method + " " + r.Path + ": " + itoa(r.Status) + " " + http.StatusText(r.Status)
		reqEntity.Description = "the request whose Bundle holds this entry"
		if r.Bundle != "" {
			reqEntity.Description = "the request whose " + r.Bundle + " Bundle holds this entry"
		}
	}
	if r.Note != "" {
		desc += " (" + r.Note + ")"
	}
	ev := event{
		ResourceType: "AuditEvent",
		Type:         coding{System: sysEventType, Code: "rest", Display: "RESTful Operation"},
		Subtype:      []coding{{System: sysInteraction, Code: code}},
		Action:       action,
		Recorded:     r.When.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		Outcome:      Outcome(r.Status),
		OutcomeDesc:  desc,
		Agent:        []agent{ag},
		Source: source{Observer: reference{Display: "kapbridge"},
			Type: []coding{{System: sysSourceType, Code: "4", Display: "Application Server"}}},
		Entity: []entity{reqEntity},
	}
	if r.Entry > 0 {
		ev.Entity = append(ev.Entity, entity{What: reference{Identifier: &identifier{System: SysEntry, Value: r.RequestID + "#" + itoa(r.Entry)}},
			Type: &coding{System: sysEntityType, Code: "2", Display: "System Object"}, Description: "Bundle entry " + itoa(r.Entry)})
	}
	if r.Type != "" && r.ID != "" && !strings.HasPrefix(r.ID, "$") && !strings.HasPrefix(r.ID, "_") {
		ev.Entity = append(ev.Entity, entity{What: reference{Reference: r.Type + "/" + r.ID},
			Type: &coding{System: sysEntityType, Code: "2", Display: "System Object"}})
	}
	return ev
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
