package records

import (
	"errors"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// Versioned writes: a mapped resource gets a new version only when its
// content changed, and a resource the previous mapping made that this one
// does not is deleted.

// validate runs the base R4 validation and the claimed profiles; a
// failure is a mapping bug, reported as the record's error so it is seen.
func validate(v *fhir.Value) string {
	name := v.GetString("resourceType") + "/" + v.GetString("id")
	if issues := fhir.Validate(v); fhir.HasErrors(issues) {
		return "mapped " + name + " is not valid FHIR R4 (a gateway bug): " + fhir.ProfileError(issues).Error()
	}
	profiles, err := ig.Profiles()
	if err != nil {
		return "the implementation guide's profiles do not load (a gateway bug): " + err.Error()
	}
	if issues := profiles.Validate(v); fhir.HasErrors(issues) {
		return "mapped " + name + " does not meet its profile (a gateway bug): " + fhir.ProfileError(issues).Error()
	}
	return ""
}

// write writes the resources that changed and deletes the ones the
// previous mapping made that this one no longer does (a held session
// cancelled loses its Encounter). The Provenance is written only when
// something else changed: its recorded time differs on every mapping, and
// a re-import must create no versions.
func (st *applyState) write(resources []*fhir.Value, oldRes []string) ([]ResourceRef, bool, error) {
	type pend struct {
		v   *fhir.Value
		k   fhir.Key
		cur fhir.Version
	}
	var prov []pend
	var refs []ResourceRef
	changed := false
	made := map[string]bool{}
	for _, v := range resources {
		k := fhir.Key{Tenant: st.tenant, Type: v.GetString("resourceType"), ID: v.GetString("id")}
		made[k.Type+"/"+k.ID] = true
		cur, err := st.tx.Read(st.ctx, k)
		if err != nil && !errors.Is(err, fhir.ErrNotFound) {
			return nil, false, err
		}
		if err != nil {
			cur = fhir.Version{Key: k}
		}
		if k.Type == "Provenance" {
			prov = append(prov, pend{v, k, cur})
			continue
		}
		if write.Unchanged(cur, v) {
			refs = append(refs, ResourceRef{k.Type, k.ID, cur.VersionID})
			continue
		}
		changed = true
		nv, err := st.putVersion(k, cur, v)
		if err != nil {
			return nil, false, err
		}
		refs = append(refs, ResourceRef{k.Type, k.ID, nv})
	}
	for _, s := range oldRes {
		r, err := ParseResourceRef(s)
		if err != nil || made[r.Type+"/"+r.ID] {
			continue
		}
		k := fhir.Key{Tenant: st.tenant, Type: r.Type, ID: r.ID}
		cur, err := st.tx.Read(st.ctx, k)
		if errors.Is(err, fhir.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if cur.Deleted {
			continue
		}
		changed = true
		if st.dry == nil {
			if _, err := st.a.Writer.Delete(st.ctx, st.tx, k, cur, time.Time{}); err != nil {
				return nil, false, err
			}
		}
	}
	for _, p := range prov {
		if !changed && p.cur.VersionID > 0 && !p.cur.Deleted {
			refs = append(refs, ResourceRef{p.k.Type, p.k.ID, p.cur.VersionID})
			continue
		}
		changed = true
		nv, err := st.putVersion(p.k, p.cur, p.v)
		if err != nil {
			return nil, false, err
		}
		refs = append(refs, ResourceRef{p.k.Type, p.k.ID, nv})
	}
	return refs, changed, nil
}

func (st *applyState) putVersion(k fhir.Key, cur fhir.Version, v *fhir.Value) (int64, error) {
	if st.dry != nil {
		return cur.VersionID + 1, nil
	}
	if cur.Deleted {
		// A deleted resource comes back as the version after the deletion.
		cur.JSON = nil
	}
	nv, err := st.a.Writer.Put(st.ctx, st.tx, k, cur, v)
	if err != nil {
		return 0, err
	}
	return nv.VersionID, nil
}
