package ehr

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
)

// Writing one part by the plan's method: conditional update; PUT by id;
// or find what was written before (link table, else a search), then
// update it (If-Match where versioned; on 412 re-read and write again)
// or create it (a create is repeated only after a search proves it did
// not land). The link table records remote id, version and content hash.

// newerThanConnection reports whether v is the first version of its
// resource, written after the connection was added: no earlier incarnation
// of the connection can have sent it.
func (o *Outbound) newerThanConnection(v fhir.Version) bool {
	return v.VersionID == 1 && !v.LastUpdated.Before(o.Conn.Created)
}

// NoteHeldForReview begins the note of a create held back because an
// earlier attempt may have landed and the EHR offers no search to tell.
const NoteHeldForReview = "held for review"

// heldError is such a hold; the row is dead-lettered with it.
type heldError struct{ typ, why string }

func (e heldError) Error() string {
	if e.why != "" {
		return NoteHeldForReview + ": " + e.why
	}
	return NoteHeldForReview + ": an earlier attempt to create this " + e.typ + " may have landed and the EHR offers no search to find it; check the EHR, then kapbridge sync replay sends it (or kapbridge sync discard drops it)"
}

// prescriberOwned says whether a change of typ made on the EHR since the
// gateway wrote it belongs to the prescriber: the course's prescription
// (MedicationRequest). Such a change is never written over: on 412 the
// row is held for review instead of re-read and sent again.
func prescriberOwned(typ string) bool { return typ == "MedicationRequest" }

// prescriberChanged is the hold of a prescription the prescriber changed.
func prescriberChanged(typ string) error {
	return heldError{typ: typ, why: "the prescriber changed this " + typ + " in the EHR since the gateway wrote it (412): a prescriber's order is not written over; check the EHR and the course, then kapbridge sync discard drops this change (the EHR's version stands)"}
}

// remote is what the EHR holds for a part.
type remote struct{ id, version string }

// write sends body (rewritten, not yet stamped) for part; it returns a
// note for the delivery record ("" when it simply went). With stage set,
// a plain create of a resource never written before is not sent but
// returned (staged), for a batch or transaction Bundle to carry.
func (o *Outbound) write(ctx context.Context, rc *round, d syncstore.Delivery, part Part, body *fhir.Value, v fhir.Version, stage bool) (string, *stagedWrite, error) {
	m := part.Method
	typ := part.Type
	srcID := body.GetString("id")
	body.Delete("id")
	hash := contentHash(body)
	linkPart := string(part.Build)
	link, err := o.ownLink(ctx, rc, d, linkPart)
	// A part deleted there (outbound_delete.go) is written anew.
	found := err == nil && link.Hash != deletedHash
	if err != nil && !errors.Is(err, syncstore.ErrNotFound) {
		return "", nil, err
	}
	if found && link.Hash == hash {
		return "", nil, nil // unchanged since written: nothing to send
	}
	// Where changes go as patches, the content written is kept as the
	// base of the next one (outbound_patch.go).
	var sent []byte
	if m.Update == UpdatePatch {
		sent = patchBase(body).Encode()
	}
	o.stamp(body, d, v)
	ident := firstPracticeIdentifier(body)
	logID := d.Ref()
	// Fresh: no link, and this is the row's first lease since it was last
	// done, so no earlier attempt can have written it unrecorded. Such a
	// resource is created with a plain POST: no search first, and no
	// conditional update (which some servers answer by scanning every
	// resource of the type). A repeat of the POST still needs the search
	// (Landed) to prove the first did not land. Only a resource first
	// written after the connection was added is fresh: an older one may be
	// there already, written by a connection of the same name that was
	// removed (with its links) and added again, so it is found first.
	fresh := !found && d.Leases == 1 && o.newerThanConnection(v) && (m.Create || m.Conditional && o.createsByIdentifier(typ, ident))
	var got remote
	switch {
	case m.Conditional && !fresh:
		if ident == "" {
			return "", nil, errors.New("no practice identifier for the conditional update")
		}
		if prescriberOwned(typ) && found && link.RemoteVersion != "" {
			// A conditional update carries no If-Match: look first
			// whether the prescriber changed it since it was written.
			cur, err := o.Client.Do(ctx, &Request{Method: http.MethodGet, URL: typ + "/" + url.PathEscape(link.RemoteID), LogID: logID})
			if err != nil {
				return "", nil, err
			}
			if v := remoteOf(cur, typ).version; v != "" && v != link.RemoteVersion {
				return "", nil, prescriberChanged(typ)
			}
		}
		resp, err := o.Client.Do(ctx, &Request{Method: http.MethodPut, URL: typ + "?identifier=" + url.QueryEscape(ident), Body: body.Encode(), LogID: logID})
		if err != nil {
			return "", nil, err
		}
		got = remoteOf(resp, typ)
	case m.PutByID:
		id := srcID
		if found {
			id = link.RemoteID
		}
		got, err = o.put(ctx, typ, id, body, m.IfMatch && found, link.RemoteVersion, logID)
		if err != nil {
			return "", nil, err
		}
		if got.id == "" {
			got.id = id
		}
	case m.Create || m.Conditional:
		find := m.Find
		if m.Conditional {
			find = FindIdentifier
		}
		if !found && !fresh {
			r, ok, err := o.find(ctx, d, typ, find, body, ident)
			if err != nil {
				return "", nil, err
			}
			if ok {
				found, link = true, syncstore.Link{RemoteType: typ, RemoteID: r.id, RemoteVersion: r.version}
			}
		}
		if !found && !fresh && find == FindNone && d.Leases > 1 && !strings.HasPrefix(d.LastError, NoteHeldForReview) {
			// An earlier holder of this row may have created it (killed,
			// or its answer lost) and no search can tell: sending again
			// could make a second copy. A person checks the EHR, then
			// `kapbridge sync replay` sends it (the note says it was held).
			return "", nil, heldError{typ: typ}
		}
		if !found {
			if stage && fresh {
				return "", &stagedWrite{d: d, part: part, typ: typ, body: body, hash: hash, sent: sent}, nil
			}
			var landed remote
			req := &Request{Method: http.MethodPost, URL: typ, Body: body.Encode(), LogID: logID}
			if find != FindNone {
				req.Landed = func(ctx context.Context) (bool, error) {
					r, ok, err := o.find(ctx, d, typ, find, body, ident)
					landed = r
					return ok, err
				}
			}
			resp, err := o.Client.Do(ctx, req)
			if err != nil {
				return "", nil, err
			}
			if resp.Landed {
				got = landed
			} else {
				got = remoteOf(resp, typ)
			}
			if got.id == "" {
				return "", nil, errors.New("the EHR answered the create without the new id (no Location, no body)")
			}
			break
		}
		switch m.Update {
		case UpdatePatch:
			got, err = o.patch(ctx, typ, link.RemoteID, link.Body, body, link.RemoteVersion, logID)
			if err != nil {
				return "", nil, err
			}
		case UpdatePut:
			got, err = o.put(ctx, typ, link.RemoteID, body, m.IfMatch, link.RemoteVersion, logID)
			if err != nil {
				return "", nil, err
			}
			if got.id == "" {
				got.id = link.RemoteID
			}
		default:
			// Recorded with its old hash, so a later change notes it again.
			if link.Connection == "" { // found by search, never recorded
				if err := o.putLink(ctx, d, part, typ, remote{link.RemoteID, link.RemoteVersion}, "", nil); err != nil {
					return "", nil, err
				}
			}
			return "changed since written, but this EHR takes no update of " + typ + " (" + string(m.Update) + "): the change was not sent", nil, nil
		}
	default:
		return "", nil, errors.New("the plan has no write method for " + typ)
	}
	return "", nil, o.putLink(ctx, d, part, typ, got, hash, sent)
}

// createsByIdentifier: a type written by conditional update may be
// created by POST instead when the EHR declares create and a search by
// identifier, the search that proves whether a create whose answer was
// lost landed.
func (o *Outbound) createsByIdentifier(typ, ident string) bool {
	return ident != "" && o.Caps != nil && o.Caps.Resource(typ).Has(InteractionCreate) && o.Caps.Searchable(typ, "identifier")
}

func (o *Outbound) putLink(ctx context.Context, d syncstore.Delivery, part Part, typ string, got remote, hash string, body []byte) error {
	return o.Sync.PutLink(ctx, syncstore.Link{Connection: o.Conn.Name, Tenant: d.Tenant, SourceType: d.Type, SourceID: d.ResourceID,
		Part: string(part.Build), RemoteType: typ, RemoteID: got.id, RemoteVersion: got.version, Hash: hash, Body: body, Updated: o.Now()})
}

// put updates typ/id; with ifMatch and a known version it sends If-Match
// and, on 412, reads the current version and tries once more (the
// practice owns what it sent: re-planning finds the same content).
func (o *Outbound) put(ctx context.Context, typ, id string, body *fhir.Value, ifMatch bool, version, logID string) (remote, error) {
	body.Set("id", jsonString(id))
	defer body.Delete("id")
	for try := 0; ; try++ {
		h := http.Header{}
		if ifMatch && version != "" {
			h.Set("If-Match", `W/"`+version+`"`)
		}
		resp, err := o.Client.Do(ctx, &Request{Method: http.MethodPut, URL: typ + "/" + url.PathEscape(id), Header: h, Body: reorderID(body).Encode(), LogID: logID})
		var ee *Error
		if err != nil && errors.As(err, &ee) && ee.Status == http.StatusPreconditionFailed && prescriberOwned(typ) {
			return remote{}, prescriberChanged(typ)
		}
		if err != nil && errors.As(err, &ee) && ee.Status == http.StatusPreconditionFailed && try == 0 {
			cur, rerr := o.Client.Do(ctx, &Request{Method: http.MethodGet, URL: typ + "/" + url.PathEscape(id), LogID: logID})
			if rerr != nil {
				return remote{}, rerr
			}
			version = remoteOf(cur, typ).version
			continue
		}
		if err != nil {
			return remote{}, err
		}
		return remoteOf(resp, typ), nil
	}
}

// reorderID puts id right after resourceType (id was appended by Set).
func reorderID(body *fhir.Value) *fhir.Value {
	out := &fhir.Value{Kind: fhir.KindObject}
	var id *fhir.Member
	for i := range body.Members {
		if body.Members[i].Key == "id" {
			id = &body.Members[i]
		}
	}
	for _, m := range body.Members {
		switch m.Key {
		case "id":
			continue
		case "resourceType":
			out.Members = append(out.Members, m)
			if id != nil {
				out.Members = append(out.Members, *id)
			}
			continue
		}
		out.Members = append(out.Members, m)
	}
	return out
}

// find looks on the EHR for what an earlier create of this part wrote.
func (o *Outbound) find(ctx context.Context, d syncstore.Delivery, typ string, how Find, body *fhir.Value, ident string) (remote, bool, error) {
	var q string
	switch how {
	case FindIdentifier:
		if ident == "" {
			return remote{}, false, nil
		}
		q = typ + "?identifier=" + url.QueryEscape(ident)
	case FindPatient:
		p := body.Get("subject").GetString("reference")
		if p == "" {
			p = body.Get("patient").GetString("reference")
		}
		if p == "" || ident == "" {
			return remote{}, false, nil
		}
		param := "patient"
		if !o.Caps.Searchable(typ, "patient") {
			param = "subject"
		}
		q = typ + "?" + param + "=" + url.QueryEscape(p) + "&_count=1000"
	case FindTarget:
		var targets []string
		for _, t := range elementsOf(body.Get("target")) {
			if r := t.GetString("reference"); r != "" {
				targets = append(targets, r)
			}
		}
		if len(targets) == 0 {
			return remote{}, false, nil
		}
		q = typ + "?target=" + url.QueryEscape(targets[0]) + "&_count=1000"
	default:
		return remote{}, false, nil
	}
	resp, err := o.Client.Do(ctx, &Request{Method: http.MethodGet, URL: q, LogID: d.Ref()})
	if err != nil {
		return remote{}, false, err
	}
	rs, err := bundleResources(resp.Body, typ)
	if err != nil {
		return remote{}, false, err
	}
	sys, val, _ := strings.Cut(ident, "|")
	mine := o.Source + "#" + d.Tenant + "/" + d.Type + "/" + d.ResourceID + "/"
	for _, r := range rs {
		match := how == FindIdentifier
		for _, id := range r.Identifier {
			if id.System == sys && id.Value == val {
				match = true
			}
		}
		if how == FindTarget {
			match = strings.HasPrefix(r.Meta.Source, mine)
		}
		if match {
			return remote{r.ID, r.Meta.VersionID}, true, nil
		}
	}
	return remote{}, false, nil
}

// firstPracticeIdentifier is "system|value" of body's first practice
// identifier, or "".
func firstPracticeIdentifier(body *fhir.Value) string {
	for _, id := range elementsOf(body.Get("identifier")) {
		if sys := id.GetString("system"); strings.HasPrefix(sys, mappings.NSPracticeRecordIDs+"/") && id.GetString("value") != "" {
			return sys + "|" + id.GetString("value")
		}
	}
	return ""
}

// remoteOf reads the id and version the EHR gave: from the body, else
// Location (Type/id/_history/vid), else ETag.
func remoteOf(resp *Response, typ string) remote {
	var r remote
	if resp == nil {
		return r
	}
	if len(resp.Body) > 0 {
		if v, err := fhir.ParseJSON(resp.Body, fhir.StoredLimits); err == nil && v.GetString("resourceType") == typ {
			r.id = v.GetString("id")
			r.version = v.Get("meta").GetString("versionId")
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" && (r.id == "" || r.version == "") {
		parts := strings.Split(strings.TrimSuffix(loc, "/"), "/")
		for i := range parts {
			if parts[i] == typ && i+1 < len(parts) {
				if r.id == "" {
					r.id = parts[i+1]
				}
				if i+3 < len(parts) && parts[i+2] == "_history" && r.version == "" {
					r.version = parts[i+3]
				}
			}
		}
	}
	if et := resp.Header.Get("ETag"); et != "" && r.version == "" {
		r.version = strings.Trim(strings.TrimPrefix(et, "W/"), `"`)
	}
	return r
}
