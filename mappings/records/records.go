// Package records owns applying practice records to the gateway's store,
// whoever sends them (the import command, the practice API, later the
// EHR sync): the Applier decodes nothing and reads no file; it checks a
// record (mappings.Check), maps it (mappings.Mapper), validates what it
// made and writes the record row with those FHIR versions in one store
// transaction. A record naming records not yet known waits (pending) and
// maps in the transaction of the record that completes it, whatever the
// arrival order; a dosing session whose client has no cleared screening
// waits on the pseudo-reference clearance/<client>. What depends on a
// changed record (the course's CarePlan, a session's observations and
// notes) is mapped again in the same transaction, and a resource whose
// content did not change gets no new version. The Exporter gives a
// course back as records, merging what prescribers changed in FHIR.
//
// The store keeps the rows through package recordstore, the contract it
// implements without importing the domain.
package records

import (
	"fmt"
	"strconv"
	"strings"
)

// ResourceRef names one FHIR resource version.
type ResourceRef struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

func (r ResourceRef) String() string {
	return r.Type + "/" + r.ID + "/" + strconv.FormatInt(r.Version, 10)
}

// ParseResourceRef parses "Type/id/version".
func ParseResourceRef(s string) (ResourceRef, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return ResourceRef{}, fmt.Errorf("records: resource reference %q: want Type/id/version", s)
	}
	v, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return ResourceRef{}, fmt.Errorf("records: resource reference %q: %w", s, err)
	}
	return ResourceRef{Type: parts[0], ID: parts[1], Version: v}, nil
}

func ref[K ~string](kind K, id string) string { return string(kind) + "/" + id }
