package records

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// storeSnapshot is every live resource of the default tenant: its content
// without server-owned elements and the Provenance's recorded time, and
// its number of versions.
type storeSnapshot map[string]snapEntry

type snapEntry struct {
	content  string
	versions int
	deleted  bool
}

// snapshot walks every resource the stored records point at.
func snapshot(t testing.TB, s fhir.Store) storeSnapshot {
	t.Helper()
	ctx := context.Background()
	rs := s.(recordstore.Store)
	rows, err := rs.ListRecords(ctx, fhir.DefaultTenant, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := storeSnapshot{}
	for _, r := range rows {
		for _, res := range r.Resources {
			rr, err := ParseResourceRef(res)
			if err != nil {
				t.Fatal(err)
			}
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: rr.Type, ID: rr.ID}
			h, err := s.History(ctx, k, 0)
			if err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			e := snapEntry{versions: len(h), deleted: h[0].Deleted}
			if !h[0].Deleted {
				v, err := fhir.ParseJSON(h[0].JSON, fhir.DefaultLimits)
				if err != nil {
					t.Fatal(err)
				}
				e.content = string(contentWithoutTimes(v))
			}
			out[rr.Type+"/"+rr.ID] = e
		}
	}
	return out
}

// contentWithoutTimes drops meta.versionId, meta.lastUpdated and
// Provenance.recorded: they say when, not what.
func contentWithoutTimes(v *fhir.Value) []byte {
	c := &fhir.Value{Kind: fhir.KindObject}
	for _, m := range v.Members {
		switch m.Key {
		case "recorded":
			continue
		case "meta":
			meta := &fhir.Value{Kind: fhir.KindObject}
			for _, mm := range m.Value.Members {
				if mm.Key != "versionId" && mm.Key != "lastUpdated" {
					meta.Members = append(meta.Members, mm)
				}
			}
			c.Members = append(c.Members, fhir.Member{Key: "meta", Value: meta})
			continue
		}
		c.Members = append(c.Members, m)
	}
	return c.Encode()
}

func equalSnapshots(a, b storeSnapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// equalContent compares content only (version counts depend on the order
// records arrived in: a CarePlan gains a version per session).
func equalContent(a, b storeSnapshot) bool {
	ok := true
	for k, v := range a {
		w, found := b[k]
		if !found || v.content != w.content || v.deleted != w.deleted {
			ok = false
		}
	}
	return ok && len(a) == len(b)
}

func diffSnapshots(a, b storeSnapshot) string {
	var buf bytes.Buffer
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			fmt.Fprintf(&buf, "only in first: %s\n", k)
		case v.content != w.content || v.deleted != w.deleted:
			i := 0
			for i < len(v.content) && i < len(w.content) && v.content[i] == w.content[i] {
				i++
			}
			lo := max(0, i-80)
			fmt.Fprintf(&buf, "differs: %s at byte %d\n  %s\n  %s\n", k, i, v.content[lo:min(len(v.content), i+200)], w.content[lo:min(len(w.content), i+200)])
		case v.versions != w.versions:
			fmt.Fprintf(&buf, "versions: %s %d vs %d\n", k, v.versions, w.versions)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			fmt.Fprintf(&buf, "only in second: %s\n", k)
		}
	}
	return buf.String()
}

var _ = mappings.KindClient
