package ehr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// Changes to a type an EHR takes by patch only (Oracle Health declares
// patch, not update, for Communication, Encounter and MedicationRequest)
// go as a JSON Patch (RFC 6902, application/json-patch+json, the format
// Oracle declares) computed from the content last written there, which
// the link keeps for such types. The patch carries If-Match with the
// version last written, so it applies to what it was computed from or
// not at all: on 412 the current version is read, the patch computed
// from it instead, and sent once more. meta is left out of both sides:
// the EHR keeps its own.

const mimeJSONPatch = "application/json-patch+json"

// patchOp is one JSON Patch operation.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// patchBase is body as a patch is computed from: without meta and id.
func patchBase(body *fhir.Value) *fhir.Value {
	b := cloneValue(body)
	b.Delete("meta")
	b.Delete("id")
	return b
}

// jsonPatch is the patch that turns from into to: members added, removed
// or replaced; arrays of the same length element by element, others
// replaced whole (positions in a list of another length mean nothing).
func jsonPatch(from, to *fhir.Value) []patchOp {
	var ops []patchOp
	diffValue(from, to, "", &ops)
	return ops
}

func pointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func diffValue(a, b *fhir.Value, path string, ops *[]patchOp) {
	switch {
	case a.Kind == fhir.KindObject && b.Kind == fhir.KindObject:
		for _, m := range a.Members {
			if b.Get(m.Key) == nil {
				*ops = append(*ops, patchOp{Op: "remove", Path: path + "/" + pointerToken(m.Key)})
			}
		}
		for _, m := range b.Members {
			p := path + "/" + pointerToken(m.Key)
			if old := a.Get(m.Key); old == nil {
				*ops = append(*ops, patchOp{Op: "add", Path: p, Value: m.Value.Encode()})
			} else {
				diffValue(old, m.Value, p, ops)
			}
		}
	case a.Kind == fhir.KindArray && b.Kind == fhir.KindArray && len(a.Array) == len(b.Array):
		for i := range a.Array {
			diffValue(a.Array[i], b.Array[i], path+"/"+strconv.Itoa(i), ops)
		}
	default:
		if ea, eb := a.Encode(), b.Encode(); !bytes.Equal(ea, eb) {
			*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: eb})
		}
	}
}

// patch sends the change of body (rewritten, stamped) to typ/id as a JSON
// Patch from base (the content last written; nil: read the EHR's current
// version first).
func (o *Outbound) patch(ctx context.Context, typ, id string, base []byte, body *fhir.Value, version, logID string) (remote, error) {
	to := patchBase(body)
	var from *fhir.Value
	if len(base) > 0 {
		var err error
		if from, err = fhir.ParseJSON(base, fhir.StoredLimits); err != nil {
			from = nil // read the EHR's instead
		}
	}
	for try := 0; ; try++ {
		if from == nil {
			cur, err := o.Client.Do(ctx, &Request{Method: http.MethodGet, URL: typ + "/" + url.PathEscape(id), LogID: logID})
			if err != nil {
				return remote{}, err
			}
			if from, err = fhir.ParseJSON(cur.Body, fhir.StoredLimits); err != nil {
				return remote{}, errors.New("the EHR's current " + typ + " to patch does not parse: " + err.Error())
			}
			version = remoteOf(cur, typ).version
			from = patchBase(from)
		}
		ops := jsonPatch(from, to)
		if len(ops) == 0 {
			return remote{id: id, version: version}, nil
		}
		doc, err := json.Marshal(ops)
		if err != nil {
			return remote{}, err
		}
		h := http.Header{"Content-Type": {mimeJSONPatch}}
		if version != "" {
			h.Set("If-Match", `W/"`+version+`"`)
		}
		// With If-Match a repeat cannot apply twice: it is safe to retry.
		resp, err := o.Client.Do(ctx, &Request{Method: http.MethodPatch, URL: typ + "/" + url.PathEscape(id), Header: h, Body: doc,
			Idempotent: version != "", LogID: logID})
		var ee *Error
		if err != nil && errors.As(err, &ee) && ee.Status == http.StatusPreconditionFailed && prescriberOwned(typ) {
			return remote{}, prescriberChanged(typ)
		}
		if err != nil && errors.As(err, &ee) && ee.Status == http.StatusPreconditionFailed && try == 0 {
			from = nil // changed there since: patch what it holds now
			continue
		}
		if err != nil {
			return remote{}, err
		}
		got := remoteOf(resp, typ)
		if got.id == "" {
			got.id = id
		}
		return got, nil
	}
}
