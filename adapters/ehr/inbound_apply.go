package ehr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// RecordSink takes an EHR's resources in as practice records, through the
// practice import's own path: mappings' FromFHIR makes the records, the
// records Applier maps and writes them (record row and FHIR versions in
// one transaction), and a Provenance naming the EHR and the remote
// version is written beside what the apply wrote.
//
// Ownership decides what an EHR may change (sync.md, "Ownership"):
//
//   - the practice owns the course, the screenings and the therapy
//     observations: an EHR's edit of a resource the gateway wrote (it
//     carries the practice identifier) and an EHR's change of a course's
//     status are not applied; each is recorded as a conflict, and where
//     the gateway wrote the resource the EHR edited, the next outbound
//     run writes the practice's version over the edit (inbound_resend.go);
//   - the prescriber owns the prescription: an EHR's edit of the
//     course's MedicationRequest is recorded as a conflict the EHR owns
//     and never written over (outbound holds a later change of it that
//     the EHR's version would lose, outbound_write.go);
//   - the EHR owns what it authored: its own vital signs, red flags and
//     doses given are applied; a dose that replaces a different one the
//     practice recorded is applied and recorded as a conflict too, so the
//     practice hears of it.
//
// Before mapping, the EHR's references are made local: the subject is the
// linked client's Patient; an encounter the gateway wrote is its
// Encounter (RemoteLinks); an encounter of the EHR's own is the client's
// session on the same day when there is exactly one, else it stays
// unresolved and the resource is kept with that reason. Nothing is
// dropped silently: every resource comes back as an item with its outcome.
type RecordSink struct {
	Connection string
	Tenant     string // "" means fhir.DefaultTenant
	// Applier applies the records; its Store must keep practice records
	// (recordstore.Store), as both SQL stores do.
	Applier   *records.Applier
	Conflicts inboundstore.Store
	Links     RemoteLinks // nil: no encounter of the gateway's is recognised
	// EHRName and EHRBase name the EHR in Provenance.
	EHRName, EHRBase string
	Now              func() time.Time
}

func (s *RecordSink) tenant() string {
	if s.Tenant == "" {
		return fhir.DefaultTenant
	}
	return s.Tenant
}

func (s *RecordSink) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Take implements InboundSink.
func (s *RecordSink) Take(ctx context.Context, patient LinkedPatient, batch []InboundResource) ([]InboundItem, error) {
	if s.Applier == nil || s.Applier.Mapper == nil || s.Conflicts == nil {
		return nil, errors.New("ehr: a record sink needs an applier with a mapper and a conflict store")
	}
	rows, ok := s.Applier.Store.(recordstore.Store)
	if !ok {
		return nil, errors.New("ehr: the record sink's store does not keep practice records")
	}
	book, err := s.clientBook(ctx, rows, patient.Client)
	if err != nil {
		return nil, err
	}
	items := make([]InboundItem, 0, len(batch))
	for _, r := range batch {
		it, err := s.take(ctx, book, patient, r)
		if err != nil {
			return items, fmt.Errorf("%s: %w", r.Ref(), err)
		}
		items = append(items, it)
	}
	return items, nil
}

// clientBook reads the client's records: the client, every practitioner
// (few), its courses and their sessions and observations.
func (s *RecordSink) clientBook(ctx context.Context, rows recordstore.Store, client string) (*mappings.Book, error) {
	book := mappings.NewBook()
	add := func(r recordstore.Row) error {
		rec, err := mappings.Decode(r.Body)
		if err != nil {
			return fmt.Errorf("ehr: stored %s %q does not decode: %w", r.Kind, r.ID, err)
		}
		book.Add(rec)
		return nil
	}
	row, ok, err := rows.GetRecord(ctx, s.tenant(), string(mappings.KindClient), client)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("ehr: client %q is linked but the store holds no such record", client)
	}
	if err := add(row); err != nil {
		return nil, err
	}
	list := func(kind mappings.Kind, keep func(recordstore.Row) bool) error {
		all, err := rows.ListRecords(ctx, s.tenant(), string(kind), recordstore.StateMapped)
		if err != nil {
			return err
		}
		for _, r := range all {
			if keep(r) {
				if err := add(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := list(mappings.KindPractitioner, func(recordstore.Row) bool { return true }); err != nil {
		return nil, err
	}
	courses := map[string]bool{}
	if err := list(mappings.KindCourse, func(r recordstore.Row) bool {
		if r.Parent == client {
			courses[r.ID] = true
			return true
		}
		return false
	}); err != nil {
		return nil, err
	}
	sessions := map[string]bool{}
	if err := list(mappings.KindSession, func(r recordstore.Row) bool {
		if courses[r.Parent] {
			sessions[r.ID] = true
			return true
		}
		return false
	}); err != nil {
		return nil, err
	}
	if err := list(mappings.KindObservation, func(r recordstore.Row) bool { return sessions[r.Parent] }); err != nil {
		return nil, err
	}
	return book, nil
}

func (s *RecordSink) take(ctx context.Context, book *mappings.Book, patient LinkedPatient, r InboundResource) (InboundItem, error) {
	it := InboundItem{Remote: r.Ref()}
	m := s.Applier.Mapper
	res := localize(r.Value, m.Practice, patient, book)
	if why, err := s.localizeEncounter(ctx, res, book); err != nil {
		return it, err
	} else if why != "" {
		it.Outcome, it.Detail = InboundKept, why
		return it, nil
	}

	// The course's prescription, edited in the EHR: the prescription is
	// the prescriber's (kap-domain.md: the prescriber holds the ketamine
	// prescription), so the edit stands there and is never written over
	// (a prescriber who stops the order must not see it active again);
	// the practice hears of it as a conflict the EHR owns.
	if own := practiceIdentifier(res, m.Practice); own != "" && r.Type == "MedicationRequest" {
		status := res.GetString("status")
		c, err := s.Conflicts.AddInboundConflict(ctx, inboundstore.Conflict{Connection: s.Connection, Tenant: s.tenant(), Remote: r.Ref(),
			Local: own, Field: "prescription", Owner: inboundstore.OwnerEHR, Practice: "as the course made it",
			EHR:        "edited in the EHR (version " + r.VersionID + ", status " + status + ")",
			Resolution: "the prescriber owns the prescription: the EHR's version stands and the gateway does not write over it; the course is not changed, so review it against the prescriber's order"})
		if err != nil {
			return it, err
		}
		it.Outcome, it.Records, it.Detail = InboundConflict, []string{own}, c.Resolution
		return it, nil
	}

	// The practice's own resource, edited in the EHR. (A CarePlan is the
	// course's: FromFHIR reads its status, decided below.)
	if own := practiceIdentifier(res, m.Practice); own != "" && r.Type != "CarePlan" {
		resent, err := s.resendPractice(ctx, r)
		if err != nil {
			return it, err
		}
		c, err := s.Conflicts.AddInboundConflict(ctx, inboundstore.Conflict{Connection: s.Connection, Tenant: s.tenant(), Remote: r.Ref(),
			Local: own, Field: strings.ToLower(r.Type), Owner: inboundstore.OwnerPractice, Practice: "as the practice recorded it",
			EHR:        "edited in the EHR (version " + r.VersionID + ")",
			Resolution: practiceResolution("the practice owns it: its record stands", resent)})
		if err != nil {
			return it, err
		}
		it.Outcome, it.Records, it.Detail = InboundConflict, []string{own}, c.Resolution
		return it, nil
	}

	in := m.FromFHIR(book, []*fhir.Value{res})
	if len(in.Kept) > 0 {
		it.Outcome, it.Detail = InboundKept, in.Kept[0].Message
		return it, nil
	}
	if len(in.Records) == 0 {
		it.Outcome, it.Detail = InboundKept, "no practice record carries it"
		return it, nil
	}
	var applied []string
	for _, rec := range in.Records {
		h := rec.RecordHeader()
		ref := string(h.Kind) + "/" + h.ID
		toApply := rec
		switch rec := rec.(type) {
		case *mappings.Course:
			old, _ := book.Course(rec.ID)
			if old != nil && old.Status != rec.Status {
				resent, err := s.resendPractice(ctx, r)
				if err != nil {
					return it, err
				}
				c, err := s.Conflicts.AddInboundConflict(ctx, inboundstore.Conflict{Connection: s.Connection, Tenant: s.tenant(), Remote: r.Ref(),
					Local: ref, Field: "course.status", Owner: inboundstore.OwnerPractice, Practice: old.Status, EHR: rec.Status,
					Resolution: practiceResolution("the practice owns the course: its status stays "+old.Status, resent)})
				if err != nil {
					return it, err
				}
				it.Outcome, it.Records, it.Detail = InboundConflict, []string{ref}, c.Resolution
				return it, nil
			}
			continue // the same status: nothing to apply
		case *mappings.Session:
			if old, _ := book.Session(rec.ID); old != nil && old.Dose != nil && rec.Dose != nil && !sameDose(old.Dose, rec.Dose) {
				if _, err := s.Conflicts.AddInboundConflict(ctx, inboundstore.Conflict{Connection: s.Connection, Tenant: s.tenant(), Remote: r.Ref(),
					Local: ref, Field: "session.dose", Owner: inboundstore.OwnerEHR, Practice: doseText(old.Dose), EHR: doseText(rec.Dose),
					Resolution: "the EHR owns the dose given: its dose replaces the practice's"}); err != nil {
					return it, err
				}
				it.Detail = "the EHR's dose replaced the practice's (conflict recorded)"
			}
		case *mappings.Observation:
			if old, _ := book.Observation(rec.ID); old != nil {
				toApply = overlayObservation(old, rec)
			}
		}
		// What mirrors the EHR's resource is not sent back to that EHR
		// (it would be a second copy there); it goes to the others.
		res, err := s.apply(syncstore.WithOrigin(ctx, s.Connection, r.Type), book, toApply)
		if err != nil {
			return it, err
		}
		it.Records = append(it.Records, ref)
		switch res.Status {
		case records.StatusRejected:
			it.Outcome = InboundRejected
			var msgs []string
			for _, p := range res.Errors {
				msgs = append(msgs, p.String())
			}
			it.Detail = strings.Join(msgs, "; ")
			return it, nil
		case records.StatusUnchanged:
		default:
			for _, rr := range res.Resources {
				applied = append(applied, rr.Type+"/"+rr.ID)
				it.Resources = append(it.Resources, rr.String())
			}
		}
	}
	if len(applied) == 0 {
		if it.Outcome == "" {
			it.Outcome = InboundUnchanged
		}
		return it, nil
	}
	it.Outcome = InboundApplied
	prov, err := s.provenance(ctx, r, applied)
	if err != nil {
		return it, err
	}
	it.Resources = append(it.Resources, prov)
	return it, nil
}

// apply applies rec and puts the result in the book, so the batch's next
// resources see it.
func (s *RecordSink) apply(ctx context.Context, book *mappings.Book, rec mappings.Record) (records.Result, error) {
	res, err := s.Applier.Apply(ctx, rec)
	if err != nil {
		return res, err
	}
	if res.Status != records.StatusRejected {
		book.Add(rec)
	}
	return res, nil
}

// provenance writes (or rewrites, when taken again after a crash) the
// Provenance of what one remote version made: its id is a hash of the
// connection and the remote version, so it converges.
func (s *RecordSink) provenance(ctx context.Context, r InboundResource, targets []string) (string, error) {
	sum := sha256.Sum256([]byte(s.Connection + "\x00" + r.Ref()))
	id := "ehr-in-" + hex.EncodeToString(sum[:16])
	v := fhir.Object()
	v.Set("resourceType", fhir.String("Provenance"))
	v.Set("id", fhir.String(id))
	var tgt []*fhir.Value
	for _, t := range targets {
		ref := fhir.Object()
		ref.Set("reference", fhir.String(t))
		tgt = append(tgt, ref)
	}
	v.Set("target", &fhir.Value{Kind: fhir.KindArray, Array: tgt})
	v.Set("recorded", fhir.String(write.FormatInstant(s.now())))
	activity := fhir.Object()
	activity.Set("text", fhir.String("taken in from the EHR "+s.EHRName))
	v.Set("activity", activity)
	who := fhir.Object()
	who.Set("display", fhir.String("EHR "+s.EHRName+" ("+s.EHRBase+")"))
	agent := fhir.Object()
	agent.Set("who", who)
	v.Set("agent", &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{agent}})
	what := fhir.Object()
	what.Set("reference", fhir.String(r.URL))
	entity := fhir.Object()
	entity.Set("role", fhir.String("source"))
	entity.Set("what", what)
	v.Set("entity", &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{entity}})

	k := fhir.Key{Tenant: s.tenant(), Type: "Provenance", ID: id}
	var out fhir.Version
	err := s.Applier.Store.Update(ctx, func(tx fhir.Tx) error {
		cur, err := tx.Read(ctx, k)
		if err != nil && !errors.Is(err, fhir.ErrNotFound) {
			return err
		}
		cur.Key = k
		out, err = s.Applier.Writer.Put(ctx, tx, k, cur, v)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write the Provenance: %w", err)
	}
	return fmt.Sprintf("Provenance/%s/%d", id, out.VersionID), nil
}

// localize returns a copy of res whose subject/patient is the linked
// client's Patient.
func localize(res *fhir.Value, practice string, patient LinkedPatient, book *mappings.Book) *fhir.Value {
	c, _ := fhir.ParseJSON(res.Encode(), fhir.DefaultLimits) // a deep copy
	local := "Patient/" + mappings.ResourceID(practice, mappings.KindClient, patient.Client, "Patient")
	for _, key := range []string{"subject", "patient"} {
		if ref := c.Get(key); ref != nil && refID(ref, "Patient") == patient.Remote {
			ref.Set("reference", fhir.String(local))
		}
	}
	return c
}

// refID returns the id of a reference to typ, or "".
func refID(ref *fhir.Value, typ string) string {
	r := ref.GetString("reference")
	if i := strings.Index(r, "/_history/"); i >= 0 {
		r = r[:i]
	}
	i := strings.LastIndex(r, typ+"/")
	if i < 0 || (i > 0 && r[i-1] != '/') {
		return ""
	}
	return r[i+len(typ)+1:]
}

// localizeEncounter points res's encounter (or, for a
// MedicationAdministration, context) at the gateway's Encounter of a
// session: the one the gateway wrote as that remote Encounter, else the
// client's only session on the resource's day. It returns why it could
// not, for a resource that needs one ("" when done or not needed).
func (s *RecordSink) localizeEncounter(ctx context.Context, res *fhir.Value, book *mappings.Book) (string, error) {
	key := "encounter"
	if res.GetString("resourceType") == "MedicationAdministration" {
		key = "context"
	}
	switch res.GetString("resourceType") {
	case "Observation", "Flag", "MedicationAdministration":
	default:
		return "", nil
	}
	practice := s.Applier.Mapper.Practice
	ref := res.Get(key)
	if ref != nil {
		remote := refID(ref, "Encounter")
		if remote == "" {
			return "", nil
		}
		if s.Links != nil {
			local, _, ok, err := s.Links.LinkOf(ctx, s.Connection, "Encounter", remote)
			if err != nil {
				return "", err
			}
			if ok {
				ref.Set("reference", fhir.String(local))
				return "", nil
			}
		}
		for _, ss := range book.All(mappings.KindSession) {
			if mappings.ResourceID(practice, mappings.KindSession, ss.RecordHeader().ID, "Encounter") == remote {
				return "", nil // already the gateway's id (an EHR that kept it)
			}
		}
	}
	day := clinicalDay(res)
	if day == "" {
		return "no encounter the gateway knows and no date to find the session by", nil
	}
	var match []*mappings.Session
	for _, r := range book.All(mappings.KindSession) {
		ss := r.(*mappings.Session)
		start := ss.ActualStart
		if start == "" {
			start = ss.PlannedStart
		}
		if len(start) >= 10 && start[:10] == day && ss.Status != "cancelled" {
			match = append(match, ss)
		}
	}
	switch len(match) {
	case 1:
		if ref == nil {
			ref = fhir.Object()
			res.Set(key, ref)
		}
		ref.Set("reference", fhir.String("Encounter/"+mappings.ResourceID(practice, mappings.KindSession, match[0].ID, "Encounter")))
		return "", nil
	case 0:
		return "no session of the client on " + day + " to put it in", nil
	default:
		return fmt.Sprintf("%d sessions of the client on %s: which one it belongs to is not guessed", len(match), day), nil
	}
}

// clinicalDay is the local calendar day (YYYY-MM-DD, as written) of the
// resource's clinical time.
func clinicalDay(res *fhir.Value) string {
	for _, s := range []string{res.GetString("effectiveDateTime"), res.Get("effectivePeriod").GetString("start"), res.Get("period").GetString("start")} {
		if len(s) >= 10 {
			return s[:10]
		}
	}
	return ""
}

// practiceIdentifier returns "kind/id" of the practice record a resource
// the gateway wrote came from (its practice identifier), or "".
func practiceIdentifier(res *fhir.Value, practice string) string {
	prefix := mappings.NSPracticeRecordIDs + "/" + practice + "/"
	ids := res.Get("identifier")
	if ids == nil {
		return ""
	}
	list := ids.Array
	if ids.Kind == fhir.KindObject {
		list = []*fhir.Value{ids}
	}
	for _, v := range list {
		if kind, ok := strings.CutPrefix(v.GetString("system"), prefix); ok {
			id, _, _ := strings.Cut(v.GetString("value"), "/")
			return kind + "/" + id
		}
	}
	return ""
}

func sameDose(a, b *mappings.Dose) bool {
	return a.Drug == b.Drug && a.Mg == b.Mg && a.Route == b.Route
}

func doseText(d *mappings.Dose) string {
	return fmt.Sprintf("%s %g mg %s", d.Drug, d.Mg, d.Route)
}

// overlayObservation merges what an EHR's resource says into the record
// of the same id the store holds (an EHR's vitals at one time arrive as
// several resources, maybe over several polls): values the new one
// carries replace, lists gain its entries, the rest stays.
func overlayObservation(old, in *mappings.Observation) *mappings.Observation {
	out := *old
	if in.Vitals != nil {
		v := mappings.Vitals{}
		if old.Vitals != nil {
			v = *old.Vitals
		}
		n := in.Vitals
		for _, f := range []struct{ dst, src **float64 }{
			{&v.Systolic, &n.Systolic}, {&v.Diastolic, &n.Diastolic}, {&v.HeartRate, &n.HeartRate}, {&v.SpO2, &n.SpO2},
			{&v.RespiratoryRate, &n.RespiratoryRate}, {&v.WeightKg, &n.WeightKg}, {&v.TemperatureC, &n.TemperatureC},
		} {
			if *f.src != nil {
				*f.dst = *f.src
			}
		}
		out.Vitals = &v
	}
	if in.Dissociation != nil {
		out.Dissociation = in.Dissociation
	}
	if in.Sedation != nil {
		out.Sedation = in.Sedation
	}
	for _, x := range in.SideEffects {
		if !slices.Contains(out.SideEffects, x) {
			out.SideEffects = append(slices.Clone(out.SideEffects), x)
		}
	}
	for _, x := range in.RedFlags {
		if !slices.Contains(out.RedFlags, x) {
			out.RedFlags = append(slices.Clone(out.RedFlags), x)
		}
	}
	if in.Phase != "" {
		out.Phase = in.Phase
	}
	if in.Comment != "" && out.Comment == "" {
		out.Comment = in.Comment
	}
	return &out
}
