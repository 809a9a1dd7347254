package sqlstore

import (
	"encoding/json"
	"fmt"

	"github.com/kapbridge/kapbridge/mappings"
)

// Practice records and idempotency keys (issue 5). The stores implement
// the interfaces adapters/practice declares (RecordTx, RecordStore,
// IdempotencyStore, IdempotencyTx) with the plain types of package
// mappings, so neither adapter imports the other.

// encodeList stores a string list as a JSON array ("[]" for none, so the
// column is never NULL).
func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always encodes
	return string(b)
}

func decodeList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("sqlstore: stored list %q: %w", s, err)
	}
	return l, nil
}

// recordCols is the column list every record query selects, in the order
// scanRecord expects.
const recordCols = `tenant, kind, id, parent, body, hash, state, pending, resources, reasons, updated`

// recordColsR is recordCols qualified by the alias r, for joins.
const recordColsR = `r.tenant, r.kind, r.id, r.parent, r.body, r.hash, r.state, r.pending, r.resources, r.reasons, r.updated`

// recordFields are the scan destinations of recordCols; finish converts
// the text columns once scanned.
type recordFields struct {
	r                           mappings.RecordRow
	kind, pending, res, reasons string
}

func (f *recordFields) dest(updated any) []any {
	return []any{&f.r.Tenant, &f.kind, &f.r.ID, &f.r.Parent, &f.r.Body, &f.r.Hash, &f.r.State, &f.pending, &f.res, &f.reasons, updated}
}

func (f *recordFields) finish() (mappings.RecordRow, error) {
	f.r.Kind = mappings.Kind(f.kind)
	var err error
	if f.r.Pending, err = decodeList(f.pending); err != nil {
		return mappings.RecordRow{}, err
	}
	if f.r.Resources, err = decodeList(f.res); err != nil {
		return mappings.RecordRow{}, err
	}
	if f.r.Reasons, err = decodeList(f.reasons); err != nil {
		return mappings.RecordRow{}, err
	}
	return f.r, nil
}

func checkRecordRow(r mappings.RecordRow) error {
	if r.Tenant == "" || r.Kind == "" || r.ID == "" {
		return fmt.Errorf("sqlstore: put record: tenant, kind and id are required (got %q, %q, %q)", r.Tenant, r.Kind, r.ID)
	}
	switch r.State {
	case mappings.RecordMapped, mappings.RecordPending, mappings.RecordRejected:
	default:
		return fmt.Errorf("sqlstore: put record %s/%s: unknown state %q", r.Kind, r.ID, r.State)
	}
	return nil
}
