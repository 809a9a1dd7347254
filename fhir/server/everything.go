package server

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// maxEverything bounds what one $everything gathers: a larger
// compartment is refused (too-costly) rather than truncated.
const maxEverything = 10000

// everythingParams are the parameters of Patient/$everything this server
// supports (the CapabilityStatement's operation says so too).
type everythingParams struct {
	since int64 // _since, unix microseconds; 0: none
	// start and end: the care-date range, Unix microseconds inclusive
	// (hasRange false: none given).
	start, end int64
	hasRange   bool
	types      map[string]bool // _type; nil: every type of the compartment
	count      int             // _count, the page size; 0: one page
	after      *everythingKey  // _cursor: the last entry of the previous page
}

// everythingKey orders the entries of $everything: the Patient first,
// then by type and id. The order depends on nothing a write changes, so a
// page boundary (the last key shown) stays put while resources are added
// or deleted: no entry is shown twice or skipped because of them.
type everythingKey struct {
	Type string `json:"t"`
	ID   string `json:"i"`
	Q    string `json:"q"` // the query fingerprint the cursor belongs to
}

func (k everythingKey) compare(o everythingKey) int {
	if (k.Type == "Patient") != (o.Type == "Patient") {
		if k.Type == "Patient" {
			return -1
		}
		return 1
	}
	return cmp.Or(strings.Compare(k.Type, o.Type), strings.Compare(k.ID, o.ID))
}

// parseEverything reads $everything's parameters. Anything else
// (_elements ...) is refused, never ignored: an ignored filter would hand
// out more of a patient's record than was asked for.
func parseEverything(params url.Values, fingerprint string) (everythingParams, error) {
	var ep everythingParams
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	}) {
		vs := params[k]
		switch k {
		case "_format", "_pretty":
		case "_type":
			ep.types = map[string]bool{}
			for _, v := range vs {
				for t := range strings.SplitSeq(v, ",") {
					t = strings.TrimSpace(t)
					switch {
					case !fhir.IsResourceType(t):
						return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything _type: %q is not an R4 resource type", t)
					case t != "Patient" && len(search.CompartmentParams("Patient", t)) == 0:
						return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything _type: %s is not in the Patient compartment", t)
					}
					ep.types[t] = true
				}
			}
		case "start", "end":
			if len(vs) != 1 {
				return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything parameter %s given %d times", k, len(vs))
			}
			lo, hi, ok := search.DateRange(vs[0])
			if !ok {
				return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything %s=%q is not a FHIR date (e.g. 2026-01-31)", k, vs[0])
			}
			if !ep.hasRange {
				ep.start, ep.end, ep.hasRange = minInt64, maxInt64, true
			}
			if k == "start" {
				ep.start = lo // from the start of the day (month, year) given
			} else {
				ep.end = hi // to its end
			}
		case "_since", "_count", "_cursor":
			if len(vs) != 1 {
				return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything parameter %s given %d times", k, len(vs))
			}
			v := vs[0]
			switch k {
			case "_since":
				us, err := parseInstantParam(k, v)
				if err != nil {
					return ep, err
				}
				ep.since = us
			case "_count":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything _count=%q: want a positive integer", v)
				}
				ep.count = min(n, 1000)
			case "_cursor":
				b, err := base64.RawURLEncoding.DecodeString(v)
				var key everythingKey
				if err == nil {
					err = json.Unmarshal(b, &key)
				}
				if err != nil || key.Type == "" || key.ID == "" {
					return ep, fhir.Errorf(fhir.IssueInvalid, "", "_cursor is not a paging cursor this server issued; follow the Bundle's next link")
				}
				if key.Q != fingerprint {
					return ep, fhir.Errorf(fhir.IssueInvalid, "", "_cursor belongs to a different $everything; follow the Bundle's next link unchanged")
				}
				ep.after = &key
			}
		default:
			return ep, fhir.Errorf(fhir.IssueNotSupported, "", "$everything parameter %q is not supported (use _since, _type, _count, start, end)", k)
		}
	}
	if ep.hasRange && ep.start > ep.end {
		return ep, fhir.Errorf(fhir.IssueInvalid, "", "$everything start is after end")
	}
	return ep, nil
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// inRange reports whether v's care dates meet start/end. The care dates
// of a resource are the values of its type's date search parameter
// (Observation.effective, Encounter.period, a DocumentReference's date
// ...): the specification leaves "care dates" to the server, and that
// parameter is R4's own choice of the clinical date of each type. A
// resource without one (its type has no date parameter, or the element is
// absent: a Condition, an AllergyIntolerance without a recorded date) is
// kept: its care date is not known, and dropping it would hide part of
// the record without saying so. The Patient is always kept.
func (s *Server) inRange(ep everythingParams, v fhir.Version) bool {
	if !ep.hasRange || v.Type == "Patient" || len(v.JSON) == 0 {
		return true
	}
	res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		return true // cannot tell: kept, as an undated resource is
	}
	dated := false
	for _, e := range search.Extract(res, s.base) {
		if e.Param != "date" || e.Type != "date" {
			continue
		}
		dated = true
		if e.Hi >= ep.start && e.Lo <= ep.end {
			return true
		}
	}
	return !dated
}

// wants reports whether v passes _type and _since.
func (ep everythingParams) wants(v fhir.Version) bool {
	return (ep.types == nil || ep.types[v.Type]) && (ep.since == 0 || v.LastUpdated.UnixMicro() >= ep.since)
}

// everything handles GET /Patient/{id}/$everything: the patient and every
// resource in its compartment, as a searchset, filtered by _type,
// _since and start/end (care dates: inRange), paged by _count. Each page gathers the compartment anew (at
// most maxEverything resources, else 422 too-costly rather than a
// truncated record) and shows the entries after the cursor's key.
func (s *Server) everything(ctx context.Context, r *Request, id string) (*Response, error) {
	path := "/Patient/" + id + "/$everything"
	params := r.URL.Query()
	fp := queryFingerprint(path, params)
	ep, err := parseEverything(params, fp)
	if err != nil {
		return nil, err
	}
	tenant, aud := r.tenant(), r.Audience
	patient, err := s.store.Read(ctx, fhir.Key{Tenant: tenant, Type: "Patient", ID: id})
	if err == nil && hidden(aud, patient) {
		err = fhir.ErrNotFound
	}
	if err == nil && patient.Deleted {
		err = fhir.Errorf(fhir.IssueDeleted, "", "Patient/%s was deleted", id)
	}
	if err != nil {
		return nil, notFound(err, fhir.Key{Type: "Patient", ID: id})
	}
	var all []fhir.Version
	if ep.wants(patient) {
		all = append(all, patient)
	}
	for _, typ := range search.CompartmentTypes("Patient") {
		if typ == "Patient" || ep.types != nil && !ep.types[typ] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err // one search per type: stop between them
		}
		q := &search.Query{Type: typ, Count: 1000, Hide: aud.Hidden(), Compartment: &search.Compartment{Type: "Patient", ID: id, Params: search.CompartmentParams("Patient", typ)}}
		var cur *search.Cursor
		for {
			res, err := s.store.Search(ctx, tenant, q, cur)
			if err != nil {
				return nil, err
			}
			for _, v := range s.visible(ctx, aud, res.Matches) {
				if ep.wants(v) && s.inRange(ep, v) {
					all = append(all, v)
				}
			}
			if len(all) > maxEverything {
				return nil, fhir.Errorf(fhir.IssueTooCostly, "", "Patient/%s has more than %d resources; $everything would be truncated, so it is refused: narrow it with _type or _since, or search the compartment by type (GET /Patient/%s/{type})", id, maxEverything, id)
			}
			if res.Next == nil {
				break
			}
			cur = res.Next
		}
	}
	keyOf := func(v fhir.Version) everythingKey { return everythingKey{Type: v.Type, ID: v.ID} }
	slices.SortFunc(all, func(a, b fhir.Version) int { return keyOf(a).compare(keyOf(b)) })
	res := search.Result{Total: len(all)}
	page := all
	if ep.after != nil {
		n, _ := slices.BinarySearchFunc(all, *ep.after, func(v fhir.Version, k everythingKey) int { return keyOf(v).compare(k) })
		for n < len(all) && keyOf(all[n]).compare(*ep.after) <= 0 {
			n++
		}
		page = all[n:]
	}
	var next string
	if ep.count > 0 && len(page) > ep.count {
		page = page[:ep.count]
		last := keyOf(page[len(page)-1])
		last.Q = fp
		b, _ := json.Marshal(last)
		np := linkParams(params, nil)
		np.Set("_cursor", base64.RawURLEncoding.EncodeToString(b))
		next = withQuery(s.base+path, np)
	}
	res.Matches = page
	return &Response{Status: http.StatusOK, Body: s.searchsetPage(path, params, &search.Query{Type: "Patient"}, res, next)}, nil
}
