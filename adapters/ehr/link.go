package ehr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// Patient linking: a client is linked to the EHR's own Patient, never
// written and never guessed. By identifier (the connection's MRN system
// and the client's MRN) where Patient search by identifier is declared,
// else by Patient/$match (only certain matches) where declared; a missing
// or ambiguous match leaves the client waiting, with the reason, until
// `kapbridge ehr link` confirms one (LinkPatient).

// LinkPatient records by hand that local patient (an id) is the EHR's
// remoteID on conn, and wakes the rows that waited for it.
func LinkPatient(ctx context.Context, s syncstore.Store, conn syncstore.Connection, patientID, remoteID string, now time.Time) error {
	patientID = strings.TrimPrefix(patientID, "Patient/")
	remoteID = strings.TrimPrefix(remoteID, "Patient/")
	if patientID == "" || remoteID == "" || strings.Contains(remoteID, "/") {
		return fmt.Errorf("ehr: link: a local Patient id and the EHR's Patient id are required (got %q, %q)", patientID, remoteID)
	}
	if err := s.PutPatientLink(ctx, syncstore.PatientLink{Connection: conn.Name, Tenant: conn.Tenant, PatientID: patientID,
		State: syncstore.PatientLinked, RemoteID: remoteID, Reason: "confirmed by hand", Updated: now}); err != nil {
		return err
	}
	return s.Wake(ctx, conn.Name, now)
}

// linkPatient returns the link of patient ("Patient/id"), matching it on
// the EHR when there is none yet (or, with force or once PatientWait has
// passed, again when it waits).
func (o *Outbound) linkPatient(ctx context.Context, tenant, patient string, force bool) (syncstore.PatientLink, error) {
	id := strings.TrimPrefix(patient, "Patient/")
	cur, err := o.Sync.PatientLink(ctx, o.Conn.Name, tenant, id)
	switch {
	case err == nil && cur.State == syncstore.PatientLinked:
		return cur, nil
	case err == nil && !force && o.Now().Sub(cur.Updated) < o.PatientWait:
		return cur, nil
	case err != nil && !errors.Is(err, syncstore.ErrNotFound):
		return cur, err
	}
	pl := syncstore.PatientLink{Connection: o.Conn.Name, Tenant: tenant, PatientID: id, State: syncstore.PatientWaiting, Updated: o.Now()}
	remote, reason, err := o.matchPatient(ctx, tenant, id)
	if err != nil {
		return pl, err
	}
	if remote != "" {
		pl.State, pl.RemoteID = syncstore.PatientLinked, remote
	} else {
		pl.Reason = reason + "; confirm with: kapbridge ehr link " + o.Conn.Name + " " + id + " EHR-PATIENT-ID"
	}
	if err := o.Sync.PutPatientLink(ctx, pl); err != nil {
		return pl, err
	}
	return pl, nil
}

// mrnOf is the client's MRN: the identifier typed MR, else one whose
// system ends in /mrn.
func mrnOf(p *fhir.Value) string {
	for _, id := range elementsOf(p.Get("identifier")) {
		if hasCoding(id.Get("type"), "http://terminology.hl7.org/CodeSystem/v2-0203", "MR") || strings.HasSuffix(id.GetString("system"), "/mrn") {
			if v := id.GetString("value"); v != "" {
				return v
			}
		}
	}
	return ""
}

// matchPatient finds the EHR's patient: its id, or "" and why not.
func (o *Outbound) matchPatient(ctx context.Context, tenant, id string) (string, string, error) {
	p := o.readRef(ctx, tenant, "Patient/"+id)
	if p == nil {
		return "", "the client's Patient is not in the store", nil
	}
	mrn := mrnOf(p)
	switch {
	case o.Caps.Searchable("Patient", "identifier") && o.Conn.MRNSystem != "" && mrn != "":
		ident := o.Conn.MRNSystem + "|" + mrn
		resp, err := o.Client.Do(ctx, &Request{Method: http.MethodGet, URL: "Patient?identifier=" + url.QueryEscape(ident), LogID: "Patient/" + id})
		if err != nil {
			return "", "", err
		}
		ids, err := bundleIDs(resp.Body, "Patient")
		if err != nil {
			return "", "", err
		}
		switch len(ids) {
		case 1:
			return ids[0], "", nil
		case 0:
			return "", "no patient on the EHR carries MRN " + ident, nil
		}
		return "", fmt.Sprintf("%d patients on the EHR carry MRN %s (%s): ambiguous, not guessed", len(ids), ident, strings.Join(ids, ", ")), nil
	case o.Caps.Operation("Patient", "match"):
		return o.matchOperation(ctx, p, mrn)
	case mrn == "":
		return "", "the client has no MRN to match on", nil
	case o.Conn.MRNSystem == "":
		return "", "the connection has no MRN system (ehr add --mrn-system)", nil
	}
	return "", "this EHR offers neither Patient search by identifier nor Patient/$match", nil
}

// matchOperation asks Patient/$match for certain matches only.
func (o *Outbound) matchOperation(ctx context.Context, p *fhir.Value, mrn string) (string, string, error) {
	q := jsonObject(jsonMember("resourceType", jsonString("Patient")))
	for _, k := range []string{"name", "birthDate", "gender", "telecom", "address"} {
		if v := p.Get(k); v != nil {
			q.Set(k, cloneValue(v))
		}
	}
	if mrn != "" && o.Conn.MRNSystem != "" {
		q.Set("identifier", jsonArray(jsonObject(jsonMember("system", jsonString(o.Conn.MRNSystem)), jsonMember("value", jsonString(mrn)))))
	}
	params := jsonObject(jsonMember("resourceType", jsonString("Parameters")), jsonMember("parameter", jsonArray(
		jsonObject(jsonMember("name", jsonString("resource")), jsonMember("resource", q)),
		jsonObject(jsonMember("name", jsonString("onlyCertainMatches")), jsonMember("valueBoolean", &fhir.Value{Kind: fhir.KindBool, Bool: true})))))
	resp, err := o.Client.Do(ctx, &Request{Method: http.MethodPost, URL: "Patient/$match", Body: params.Encode(), Idempotent: true})
	if err != nil {
		return "", "", err
	}
	ids, err := bundleIDs(resp.Body, "Patient")
	if err != nil {
		return "", "", err
	}
	switch len(ids) {
	case 1:
		return ids[0], "", nil
	case 0:
		return "", "Patient/$match found no certain match", nil
	}
	return "", fmt.Sprintf("Patient/$match found %d certain matches (%s): ambiguous, not guessed", len(ids), strings.Join(ids, ", ")), nil
}

// bundleEntry is what the sync reads of a Bundle entry's resource.
type bundleEntry struct {
	ID   string
	Meta struct {
		VersionID string `json:"versionId"`
		Source    string `json:"source"`
	} `json:"meta"`
	Identifier   identifierList `json:"identifier"`
	ResourceType string         `json:"resourceType"`
}

// identifierList reads identifier as a list whether the resource type
// has many (Observation: 0..*) or one (QuestionnaireResponse: 0..1, a
// lone object). Reading only the list form failed every search that
// found a QuestionnaireResponse: the chaos test met it when a create had
// landed before the gateway was killed and the restarted worker searched
// for it.
type identifierList []struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

func (l *identifierList) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var one struct {
			System string `json:"system"`
			Value  string `json:"value"`
		}
		if err := json.Unmarshal(t, &one); err != nil {
			return err
		}
		*l = identifierList{one}
		return nil
	}
	var many []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// bundleResources reads the entries of typ in a search Bundle (includes
// and OperationOutcomes aside).
func bundleResources(data []byte, typ string) ([]bundleEntry, error) {
	b, err := ParseBundle(data)
	if err != nil {
		return nil, err
	}
	var out []bundleEntry
	for _, e := range b.Entry {
		if len(e.Resource) == 0 {
			continue
		}
		var r bundleEntry
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			return nil, fmt.Errorf("ehr: bundle entry: %w", err)
		}
		if r.ResourceType == typ && r.ID != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

func bundleIDs(data []byte, typ string) ([]string, error) {
	rs, err := bundleResources(data, typ)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids, nil
}
