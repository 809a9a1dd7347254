package ehr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// Inbound: what prescribers record in their EHR comes back. Poller polls
// one EHR per linked patient, per resource type, over overlapping
// windows; takes each remote resource version once (by id + versionId,
// or by content hash where the EHR does not version); drops echoes of
// the gateway's own writes; and hands the rest to an InboundSink, which
// maps them to practice records through the practice import's apply path
// (RecordSink). The cursor of a type advances only after the whole window
// was fetched and taken, so a crash or an error means the window is
// polled again, and the taken versions make that harmless.

// InboundTypes are polled by default: what FromFHIR maps (vital signs and
// other Observations, doses, course status, red flags) and what a
// prescriber orders.
var InboundTypes = []string{"Observation", "MedicationAdministration", "MedicationRequest", "CarePlan", "Flag"}

// The tag the gateway's writes carry (meta.tag, the outbound writer's),
// by which an EHR that keeps meta as written shows its echoes. EHRs that
// do not are recognised through the link table (RemoteLinks) instead.
const (
	EchoTagSystem = "http://kapbridge.org/fhir/CodeSystem/sync"
	EchoTagCode   = "kapbridge-outbound"
)

// dateParams: where an EHR cannot search by _lastUpdated, the clinical
// date parameter of each type windows the poll instead.
var dateParams = map[string]string{
	"Observation": "date", "MedicationAdministration": "effective-time", "MedicationRequest": "authoredon",
	"CarePlan": "date", "Flag": "date",
}

// LinkedPatient is a practice client and the EHR's patient it is linked
// to.
type LinkedPatient struct {
	Client string // the practice's client id
	Remote string // the EHR's Patient id
}

// RemoteLinks is what the inbound side needs of the link table the
// outbound writer keeps: which local resource a remote one is, and the
// version and content hash the gateway wrote there.
type RemoteLinks interface {
	// LinkOf returns the local resource ("Type/id") written as the
	// remote one, the remote version the gateway's write got ("" if
	// unknown) and ok false if the gateway never wrote it.
	LinkOf(ctx context.Context, connection, remoteType, remoteID string) (local, version string, ok bool, err error)
}

// InboundResource is one remote resource version the poller found new.
type InboundResource struct {
	Type, ID, VersionID string
	LastUpdated         time.Time
	Hash                string // SHA-256 of the resource without meta
	URL                 string // absolute, with _history/version when versioned
	Value               *fhir.Value
	// Local is the local resource the gateway wrote as this one
	// (RemoteLinks), "" for the EHR's own.
	Local string
}

// Ref is "Type/id/_history/v" (or "Type/id").
func (r InboundResource) Ref() string {
	if r.VersionID == "" {
		return r.Type + "/" + r.ID
	}
	return r.Type + "/" + r.ID + "/_history/" + r.VersionID
}

// Outcomes of a resource taken in.
const (
	InboundApplied   = "applied"   // mapped to practice records and applied
	InboundUnchanged = "unchanged" // mapped, and the records already said so
	InboundKept      = "kept"      // nothing a practice record holds (Detail says why)
	InboundConflict  = "conflict"  // ownership decided against it (recorded)
	InboundRejected  = "rejected"  // the apply refused the record (Detail says why)
	InboundEcho      = "echo"      // the gateway's own write coming back
)

// InboundItem is what became of one resource.
type InboundItem struct {
	Remote  string // Type/id/_history/v
	Outcome string
	// Records are the practice records it changed ("kind/id"), Resources
	// the local FHIR versions the apply wrote.
	Records   []string
	Resources []string
	Detail    string
}

// InboundSink takes resources of one patient in: it returns one item
// per resource, in order. Its error is for failures that leave the batch
// unapplied (storage); a resource it cannot use is an item with a reason.
type InboundSink interface {
	Take(ctx context.Context, patient LinkedPatient, batch []InboundResource) ([]InboundItem, error)
}

// Poller polls one EHR connection.
type Poller struct {
	Connection string
	Tenant     string // "" means fhir.DefaultTenant
	Client     *Client
	Caps       *Capabilities
	State      inboundstore.Store
	Sink       InboundSink
	// Links recognises echoes of the gateway's writes and where the EHR's
	// resources are the gateway's; nil: only the tag and meta.source.
	Links RemoteLinks
	// Source is the meta.source prefix the gateway's writes carry; ""
	// leaves meta.source out of the echo check.
	Source string
	// Types polled; nil means InboundTypes.
	Types []string
	// Overlap is how far before the cursor a _lastUpdated window starts
	// (clocks and commit order differ between servers); zero means 5
	// minutes. DateOverlap is the same for a clinical-date window, where
	// a result entered late has an old date; zero means 30 days.
	Overlap, DateOverlap time.Duration
	// PageSize is _count; zero means 100. MaxPages bounds one window;
	// zero means 1000.
	PageSize, MaxPages int
	Logger             *slog.Logger
	Now                func() time.Time
}

// TypePoll is what one type's poll did.
type TypePoll struct {
	Type string
	// Window is the parameter that windowed it (_lastUpdated, a date
	// parameter) and its lower bound; empty Window: the whole list.
	Window string
	From   time.Time
	Pages  int
	// Fetched counts the resources in the window; Duplicates those taken
	// before at the same version or content; Echoes the gateway's own.
	Fetched, Duplicates, Echoes int
	// Skipped says why the type was not polled (the EHR cannot search it).
	Skipped string
	Err     error
}

// InboundReport is what one patient's poll did: per type, and per new
// resource.
type InboundReport struct {
	Connection string
	Patient    LinkedPatient
	Types      []TypePoll
	Items      []InboundItem
}

// Count returns how many items have outcome.
func (r *InboundReport) Count(outcome string) int {
	n := 0
	for _, it := range r.Items {
		if it.Outcome == outcome {
			n++
		}
	}
	return n
}

func (p *Poller) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Poller) tenant() string {
	if p.Tenant == "" {
		return fhir.DefaultTenant
	}
	return p.Tenant
}

func (p *Poller) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// PollPatient polls every type for one linked patient. A type that fails
// does not stop the others; the returned error joins their errors (each
// also in its TypePoll).
func (p *Poller) PollPatient(ctx context.Context, patient LinkedPatient) (*InboundReport, error) {
	if p.Client == nil || p.State == nil || p.Sink == nil || p.Connection == "" {
		return nil, errors.New("ehr: a poller needs a connection name, a client, a state store and a sink")
	}
	if patient.Client == "" || patient.Remote == "" {
		return nil, errors.New("ehr: poll: the patient is not linked")
	}
	types := p.Types
	if types == nil {
		types = InboundTypes
	}
	rep := &InboundReport{Connection: p.Connection, Patient: patient}
	var errs []error
	for _, typ := range types {
		tp := p.pollType(ctx, patient, typ, rep)
		if tp.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", typ, tp.Err))
		}
		rep.Types = append(rep.Types, tp)
		if ctx.Err() != nil {
			break
		}
	}
	return rep, errors.Join(errs...)
}

func (p *Poller) pollType(ctx context.Context, patient LinkedPatient, typ string, rep *InboundReport) TypePoll {
	tp := TypePoll{Type: typ}
	if p.Caps != nil && !p.Caps.Allows(typ, InteractionSearchType) {
		tp.Skipped = "the EHR's CapabilityStatement does not declare search on " + typ
		return tp
	}
	// The reference as [type]/[id], which every server must accept (a
	// bare id is allowed only where the parameter has a single target,
	// and some servers, Medplum's for one, match only the typed form).
	q := url.Values{}
	switch {
	case p.Caps == nil || p.Caps.Searchable(typ, "patient"):
		q.Set("patient", "Patient/"+patient.Remote)
	case p.Caps.Searchable(typ, "subject"):
		q.Set("subject", "Patient/"+patient.Remote)
	default:
		tp.Skipped = "the EHR cannot search " + typ + " by patient or subject"
		return tp
	}
	overlap := p.Overlap
	if overlap <= 0 {
		overlap = 5 * time.Minute
	}
	switch {
	case p.Caps == nil || p.Caps.Searchable(typ, "_lastUpdated"):
		tp.Window = "_lastUpdated"
	case dateParams[typ] != "" && p.Caps.Searchable(typ, dateParams[typ]):
		tp.Window = dateParams[typ]
		overlap = p.DateOverlap
		if overlap <= 0 {
			overlap = 30 * 24 * time.Hour
		}
	}
	cur, haveCursor, err := p.State.InboundCursor(ctx, p.Connection, p.tenant(), patient.Client, typ)
	if err != nil {
		tp.Err = err
		return tp
	}
	if tp.Window != "" && haveCursor && !cur.Since.IsZero() {
		tp.From = cur.Since.Add(-overlap)
		q.Set(tp.Window, "ge"+tp.From.UTC().Format(time.RFC3339))
	}
	size := p.PageSize
	if size <= 0 {
		size = 100
	}
	q.Set("_count", fmt.Sprint(size))
	maxPages := p.MaxPages
	if maxPages <= 0 {
		maxPages = 1000
	}

	newest := cur.Since
	var batch []InboundResource
	matches := 0
	next := typ + "?" + q.Encode()
	// keyset is set once the EHR has shown it pages without next links
	// (Medplum's in-memory router does): the rest of the window is then
	// read sorted by _lastUpdated, each page from the last one's newest
	// time on. seen keeps a resource read twice (a page boundary inside
	// one timestamp) from being taken twice in this poll.
	var keyset struct {
		on   bool
		from time.Time
	}
	seen := map[string]bool{}
	for next != "" {
		if tp.Pages == maxPages {
			tp.Err = fmt.Errorf("more than %d pages in one window: the cursor stays where it was", maxPages)
			return tp
		}
		tp.Pages++
		resp, err := p.Client.Do(ctx, &Request{Method: http.MethodGet, URL: next, LogID: p.Connection + " inbound " + typ})
		if err != nil {
			tp.Err = err
			return tp
		}
		b, err := ParseBundle(resp.Body)
		if err != nil {
			tp.Err = err
			return tp
		}
		if tp.Window == "_lastUpdated" && tp.Pages == 1 && b.Meta != nil && b.Meta.LastUpdated != nil {
			// The server's time of the search: what changes after it is
			// newer (in the server's clock, which _lastUpdated compares
			// in), so a type with nothing new moves on too.
			if t, err := time.Parse(time.RFC3339Nano, *b.Meta.LastUpdated); err == nil && t.After(newest) {
				newest = t
			}
		}
		pageMatches := 0
		var pageNewest, prev time.Time
		sorted := true
		for _, e := range b.Entry {
			if e.Search != nil && e.Search.Mode != nil && e.Search.Mode.Code() != "match" {
				continue // included resources, outcomes
			}
			if len(e.Resource) == 0 {
				continue
			}
			matches++
			pageMatches++
			res, err := p.resource(e.Resource, e.FullUrl)
			if err != nil {
				rep.Items = append(rep.Items, InboundItem{Remote: typ + " entry", Outcome: InboundKept, Detail: err.Error()})
				continue
			}
			if res.Type != typ {
				continue
			}
			if res.LastUpdated.Before(prev) {
				sorted = false
			}
			prev = res.LastUpdated
			if res.LastUpdated.After(pageNewest) {
				pageNewest = res.LastUpdated
			}
			key := res.ID + "/" + res.VersionID + "/" + res.Hash
			if seen[key] {
				continue
			}
			seen[key] = true
			tp.Fetched++
			if t := windowTime(res, tp.Window); t.After(newest) {
				newest = t
			}
			dup, echo, err := p.classify(ctx, &res)
			if err != nil {
				tp.Err = err
				return tp
			}
			switch {
			case dup:
				tp.Duplicates++
			case echo:
				tp.Echoes++
				if err := p.mark(ctx, res, InboundEcho, ""); err != nil {
					tp.Err = err
					return tp
				}
			default:
				batch = append(batch, res)
			}
		}
		next = NextLink(b)
		if keyset.on {
			next, err = p.keysetNext(typ, q, b, pageMatches, sorted, &keyset.from, pageNewest)
			if err != nil {
				tp.Err = err
				return tp
			}
			continue
		}
		if next == "" && b.Total != nil && *b.Total > matches {
			// A server that pages without next links would otherwise
			// lose the rest of the window without a word. Where the
			// window is _lastUpdated, read it again sorted by it, a page
			// at a time from the newest time seen; else refuse.
			if tp.Window != "_lastUpdated" {
				tp.Err = fmt.Errorf("the EHR counts %d matches but gave %d and no next link, and %s cannot be read in _lastUpdated order: nothing taken, the cursor stays (a larger page size may help)", *b.Total, matches, typ)
				return tp
			}
			keyset.on, keyset.from = true, tp.From
			next = keysetURL(typ, q, keyset.from)
		}
	}
	if len(batch) > 0 {
		items, err := p.Sink.Take(ctx, patient, batch)
		if err != nil {
			tp.Err = err
			return tp
		}
		for i, it := range items {
			if i < len(batch) {
				if err := p.mark(ctx, batch[i], it.Outcome, unusedReason(it)); err != nil {
					tp.Err = err
					return tp
				}
			}
			rep.Items = append(rep.Items, it)
		}
	}
	if err := p.State.PutInboundCursor(ctx, inboundstore.Cursor{Connection: p.Connection, Tenant: p.tenant(), Patient: patient.Client, Type: typ,
		Since: newest, Polled: p.now()}); err != nil {
		tp.Err = err
	}
	p.log().Info("ehr inbound poll", "connection", p.Connection, "type", typ, "pages", tp.Pages, "fetched", tp.Fetched,
		"new", len(batch), "duplicates", tp.Duplicates, "echoes", tp.Echoes)
	return tp
}

// keysetURL is the search of typ's window from `from` on, sorted by
// _lastUpdated (ge: resources sharing the boundary time are read again
// and skipped as seen).
func keysetURL(typ string, q url.Values, from time.Time) string {
	k := url.Values{}
	for name, vs := range q {
		k[name] = vs
	}
	k.Del("_lastUpdated")
	if !from.IsZero() {
		k.Set("_lastUpdated", "ge"+from.UTC().Format(time.RFC3339Nano))
	}
	k.Set("_sort", "_lastUpdated")
	return typ + "?" + k.Encode()
}

// keysetNext decides what follows a page of a keyset read: nothing when
// the page held every remaining match, else the search from the page's
// newest time. It refuses (rather than lose or loop) when the EHR did not
// sort by _lastUpdated or a whole page shares one time, so the next page
// would be the same.
func (p *Poller) keysetNext(typ string, q url.Values, b *models.Bundle, pageMatches int, sorted bool, from *time.Time, pageNewest time.Time) (string, error) {
	if !sorted {
		return "", fmt.Errorf("the EHR pages without next links and did not sort %s by _lastUpdated when asked: nothing taken, the cursor stays (a larger page size may help)", typ)
	}
	if b.Total == nil || *b.Total <= pageMatches {
		return "", nil
	}
	if pageMatches == 0 || !pageNewest.After(*from) {
		return "", fmt.Errorf("the EHR pages without next links and more than a page of %s (%d) share the time %s: nothing taken, the cursor stays (a larger page size may help)",
			typ, pageMatches, from.UTC().Format(time.RFC3339Nano))
	}
	*from = pageNewest
	return keysetURL(typ, q, *from), nil
}

// resource reads one entry's resource.
func (p *Poller) resource(raw []byte, fullURL *string) (InboundResource, error) {
	v, err := fhir.ParseJSON(raw, fhir.DefaultLimits)
	if err != nil {
		return InboundResource{}, fmt.Errorf("an entry that is not a resource: %w", err)
	}
	r := InboundResource{Type: v.GetString("resourceType"), ID: v.GetString("id"), Value: v}
	if r.Type == "" || r.ID == "" {
		return InboundResource{}, errors.New("an entry without resourceType or id")
	}
	meta := v.Get("meta")
	r.VersionID = meta.GetString("versionId")
	if lu := meta.GetString("lastUpdated"); lu != "" {
		r.LastUpdated, _ = time.Parse(time.RFC3339Nano, lu)
	}
	r.Hash = inboundHash(v)
	base := strings.TrimSuffix(p.Client.Base().String(), "/")
	if fullURL != nil && strings.HasPrefix(*fullURL, "http") {
		base = strings.TrimSuffix(strings.TrimSuffix(*fullURL, "/"+r.ID), "/"+r.Type)
	}
	r.URL = base + "/" + r.Type + "/" + r.ID
	if r.VersionID != "" {
		r.URL += "/_history/" + r.VersionID
	}
	return r, nil
}

// classify: dup when this version (or this content) was taken before;
// echo when it is the gateway's own write coming back (its tag, its
// meta.source, or the version the link table says the gateway wrote).
func (p *Poller) classify(ctx context.Context, r *InboundResource) (dup, echo bool, err error) {
	t, ok, err := p.State.InboundTaken(ctx, p.Connection, r.Type, r.ID)
	if err != nil {
		return false, false, err
	}
	if ok && ((r.VersionID != "" && t.VersionID == r.VersionID) || t.Hash == r.Hash) {
		return true, false, nil
	}
	meta := r.Value.Get("meta")
	if tags := meta.Get("tag"); tags != nil {
		for _, tag := range tags.Array {
			if tag.GetString("system") == EchoTagSystem && tag.GetString("code") == EchoTagCode {
				echo = true
			}
		}
	}
	if p.Source != "" && strings.HasPrefix(meta.GetString("source"), p.Source) {
		echo = true
	}
	if p.Links != nil {
		local, version, linked, err := p.Links.LinkOf(ctx, p.Connection, r.Type, r.ID)
		if err != nil {
			return false, false, err
		}
		if linked {
			r.Local = local
			if version != "" && version == r.VersionID {
				echo = true
			}
		}
	}
	return false, echo, nil
}

func (p *Poller) mark(ctx context.Context, r InboundResource, outcome, reason string) error {
	return p.State.PutInboundTaken(ctx, inboundstore.Taken{Connection: p.Connection, Type: r.Type, RemoteID: r.ID,
		VersionID: r.VersionID, Hash: r.Hash, Outcome: outcome, Reason: reason, At: p.now()})
}

// unusedReason is what `sync status` lists for a resource that came back
// and could not be used (kept or rejected): the item's detail, clipped.
func unusedReason(it InboundItem) string {
	if it.Outcome != InboundKept && it.Outcome != InboundRejected {
		return ""
	}
	if it.Detail == "" {
		return "no reason given"
	}
	return clip(it.Detail, 1000)
}

// windowTime is the time a resource stands at in the window: its
// meta.lastUpdated, or for a date window its clinical date.
func windowTime(r InboundResource, window string) time.Time {
	if window == "_lastUpdated" || window == "" {
		return r.LastUpdated
	}
	v := r.Value
	for _, s := range []string{v.GetString("effectiveDateTime"), v.Get("effectivePeriod").GetString("start"), v.GetString("issued"),
		v.GetString("authoredOn"), v.Get("period").GetString("start"), v.GetString("created")} {
		if s == "" {
			continue
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// inboundHash is the SHA-256 of the resource without meta (which servers
// restamp): two versions that differ only in meta are the same content.
func inboundHash(v *fhir.Value) string {
	c := *v
	c.Members = nil
	for _, m := range v.Members {
		if m.Key != "meta" {
			c.Members = append(c.Members, m)
		}
	}
	sum := sha256.Sum256(c.Encode())
	return hex.EncodeToString(sum[:])
}
