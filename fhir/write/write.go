// Package write owns how a resource version is written: the server-owned
// elements it stamps (id, meta.versionId, meta.lastUpdated), the index
// values written beside it in the same transaction, and telling an
// unchanged resource from a changed one. The REST API, Bundles and the
// practice importer all write through it, so a version looks the same
// whoever wrote it.
package write

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Writer writes versions. The zero value works: Now defaults to time.Now,
// Base (this server's base URL, so absolute references to it index as
// local ones) to "", and Changed to nothing.
type Writer struct {
	Base string
	Now  func() time.Time
	// Method is recorded on the versions written (fhir.Version.Method):
	// the HTTP method of the interaction. "" records none, for writers
	// that are no REST interaction (the importer).
	Method string
	// Changed, when set, runs inside the writing transaction after every
	// version Put or Delete writes: the hook by which EHR sync enqueues
	// the change (syncstore.Enqueue), so the change and its outbox row
	// commit or vanish together whichever path wrote it (FHIR API,
	// Bundles, practice import, practice API). Its error fails the write.
	Changed func(ctx context.Context, tx fhir.Tx, v fhir.Version) error
}

func (w Writer) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

// Put writes res, already validated, as the version after cur (the zero
// Version, with its Key set, for a new resource). It stamps res in place.
func (w Writer) Put(ctx context.Context, tx fhir.Tx, k fhir.Key, cur fhir.Version, res *fhir.Value) (fhir.Version, error) {
	ts := w.now().UTC().Truncate(time.Microsecond)
	vid := cur.VersionID + 1
	Stamp(res, k.ID, vid, ts)
	v := fhir.Version{Key: k, VersionID: vid, LastUpdated: ts, JSON: res.Encode(), Method: w.Method}
	if err := tx.Put(ctx, v, w.Index(res)); err != nil {
		return fhir.Version{}, err
	}
	return v, w.changed(ctx, tx, v)
}

// Index is what is indexed for a live version res: its identifiers and
// search-parameter values. Put writes it beside the version; kapbridge
// reindex rebuilds stored versions' index rows with it, so data written
// before a change to the extraction is found the same way.
func (w Writer) Index(res *fhir.Value) fhir.Index {
	entries := search.Extract(res, w.Base)
	search.IndexIdentifiers(entries) // Reference.identifier, for :identifier
	return fhir.Index{Identifiers: Identifiers(res), Entries: entries}
}

// Delete writes a deletion of k as the version after cur (which must be
// live); ts zero leaves the time to the store's clock.
func (w Writer) Delete(ctx context.Context, tx fhir.Tx, k fhir.Key, cur fhir.Version, ts time.Time) (fhir.Version, error) {
	if !ts.IsZero() {
		ts = ts.UTC().Truncate(time.Microsecond)
	}
	v := fhir.Version{Key: k, VersionID: cur.VersionID + 1, LastUpdated: ts, Deleted: true, Method: w.Method}
	if err := tx.Put(ctx, v, fhir.Index{}); err != nil {
		return fhir.Version{}, err
	}
	return v, w.changed(ctx, tx, v)
}

func (w Writer) changed(ctx context.Context, tx fhir.Tx, v fhir.Version) error {
	if w.Changed == nil {
		return nil
	}
	return w.Changed(ctx, tx, v)
}

// Unchanged reports whether res has the same content as the live version
// cur, apart from the server-owned id, meta.versionId and
// meta.lastUpdated: writing it again would make a version that says
// nothing new. res is not modified.
func Unchanged(cur fhir.Version, res *fhir.Value) bool {
	if cur.Deleted || len(cur.JSON) == 0 {
		return false
	}
	old, err := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
	if err != nil {
		return false
	}
	return bytes.Equal(contentOf(old), contentOf(res))
}

// contentOf encodes v without the server-owned elements. Member order
// counts: mappings and importers produce the same order for the same
// content, and a reordered resource is, harmlessly, a new version.
func contentOf(v *fhir.Value) []byte {
	c := &fhir.Value{Kind: fhir.KindObject}
	for _, m := range v.Members {
		switch m.Key {
		case "id":
			continue
		case "meta":
			meta := &fhir.Value{Kind: fhir.KindObject}
			for _, mm := range m.Value.Members {
				switch mm.Key {
				case "versionId", "_versionId", "lastUpdated", "_lastUpdated":
				default:
					meta.Members = append(meta.Members, mm)
				}
			}
			if len(meta.Members) > 0 {
				c.Members = append(c.Members, fhir.Member{Key: "meta", Value: meta})
			}
			continue
		}
		c.Members = append(c.Members, m)
	}
	return c.Encode()
}

// Stamp sets the server-owned elements: id, meta.versionId and
// meta.lastUpdated. Everything else stays as received.
func Stamp(res *fhir.Value, id string, vid int64, ts time.Time) {
	out := make([]fhir.Member, 0, len(res.Members)+2)
	var meta *fhir.Value
	for _, m := range res.Members {
		switch m.Key {
		case "id":
			continue
		case "meta":
			meta = m.Value
			continue
		}
		out = append(out, m)
	}
	if meta == nil {
		meta = fhir.Object()
	}
	meta.Delete("versionId")
	meta.Delete("_versionId")
	meta.Delete("lastUpdated")
	meta.Delete("_lastUpdated")
	meta.Members = append([]fhir.Member{
		{Key: "versionId", Value: fhir.String(strconv.FormatInt(vid, 10))},
		{Key: "lastUpdated", Value: fhir.String(FormatInstant(ts))},
	}, meta.Members...)
	// resourceType first, then id and meta, then the rest in received
	// order: the conventional layout, and equal as JSON either way.
	final := make([]fhir.Member, 0, len(out)+2)
	rest := out
	if len(out) > 0 && out[0].Key == "resourceType" {
		final = append(final, out[0])
		rest = out[1:]
	}
	final = append(final, fhir.Member{Key: "id", Value: fhir.String(id)}, fhir.Member{Key: "meta", Value: meta})
	final = append(final, rest...)
	res.Members = final
}

// FormatInstant renders a FHIR instant with microseconds, in UTC.
func FormatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// Identifiers returns the resource's top-level identifiers (those with a
// value), which the store indexes for conditional interactions.
func Identifiers(res *fhir.Value) []fhir.Identifier {
	v := res.Get("identifier")
	if v == nil {
		return nil
	}
	items := []*fhir.Value{v}
	if v.Kind == fhir.KindArray {
		items = v.Array
	}
	var out []fhir.Identifier
	for _, it := range items {
		if val := it.GetString("value"); val != "" {
			out = append(out, fhir.Identifier{System: it.GetString("system"), Value: val})
		}
	}
	return out
}
