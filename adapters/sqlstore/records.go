package sqlstore

import (
	"encoding/json"
	"fmt"

	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// Practice records and idempotency keys (issue 5). Both stores implement
// package recordstore's contract (Store, and Tx on their transactions):
// plain rows, so the store imports no domain package.

var (
	_ recordstore.Store = (*sqliteStore)(nil)
	_ recordstore.Tx    = (*sqliteTx)(nil)
	_ recordstore.Store = (*pgStore)(nil)
	_ recordstore.Tx    = (*pgTx)(nil)
)

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
	r                     recordstore.Row
	pending, res, reasons string
}

func (f *recordFields) dest(updated any) []any {
	return []any{&f.r.Tenant, &f.r.Kind, &f.r.ID, &f.r.Parent, &f.r.Body, &f.r.Hash, &f.r.State, &f.pending, &f.res, &f.reasons, updated}
}

func (f *recordFields) finish() (recordstore.Row, error) {
	var err error
	if f.r.Pending, err = decodeList(f.pending); err != nil {
		return recordstore.Row{}, err
	}
	if f.r.Resources, err = decodeList(f.res); err != nil {
		return recordstore.Row{}, err
	}
	if f.r.Reasons, err = decodeList(f.reasons); err != nil {
		return recordstore.Row{}, err
	}
	return f.r, nil
}

func checkRecordRow(r recordstore.Row) error {
	if r.Tenant == "" || r.Kind == "" || r.ID == "" {
		return fmt.Errorf("sqlstore: put record: tenant, kind and id are required (got %q, %q, %q)", r.Tenant, r.Kind, r.ID)
	}
	switch r.State {
	case recordstore.StateMapped, recordstore.StatePending, recordstore.StateRejected:
	default:
		return fmt.Errorf("sqlstore: put record %s/%s: unknown state %q", r.Kind, r.ID, r.State)
	}
	return nil
}

// rowCursor is what scanRows needs of *sql.Rows and pgx.Rows alike.
type rowCursor interface {
	Next() bool
	Err() error
}

// scanRows scans every row of a query with scan (closing the rows is the
// caller's: the two drivers' Close differ).
func scanRows(rows rowCursor, scan func() (recordstore.Row, error)) ([]recordstore.Row, error) {
	var out []recordstore.Row
	for rows.Next() {
		r, err := scan()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
