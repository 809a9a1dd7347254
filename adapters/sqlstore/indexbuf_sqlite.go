package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The SQLite writer does not insert a version's search-index rows when the
// version is Put: it buffers them and inserts every row of the batch just
// before the batch commits, sorted by key and many rows per statement.
//
// Why: a group-commit batch runs each caller's fn in its own SAVEPOINT, and
// SQLite copies every page a savepoint first touches into the statement
// journal. Index rows are most of a write's pages (an observation record
// makes ~100 of them, spread over every index B-tree), so inserting them
// inside the savepoints cost a page copy per row per caller, plus a
// statement per row. Outside the savepoints and in key order, neighbouring
// rows share pages and statements. Nothing changes for atomicity: the rows
// are still in the batch's transaction, and a caller whose savepoint rolls
// back has its buffered rows dropped with it.
//
// A search inside a transaction (sqliteTx.Search) must see the rows of the
// versions written before it. Its own fn's rows are inserted on the spot
// (inside its savepoint, so they go if it fails). Rows of earlier callers
// in the batch cannot be inserted inside this fn's savepoint (its rollback
// would take them too), so the fn is rolled back, the buffer is flushed
// outside any savepoint, and the fn runs again (Update may always re-run
// fn).

// idxChunk is how many rows one multi-row INSERT carries: big enough to
// amortize a statement, small enough to stay far below SQLite's limit of
// bound variables (the widest table has 25 columns: 800 variables).
const idxChunk = 32

// idxBuffer holds the index rows waiting for the batch's end, per table, in
// insert column order (tenant, type, vkey, the table's columns).
type idxBuffer struct {
	rows [numTables][][]any
	// mark is the buffer's length per table when the running fn's savepoint
	// began: rows before it belong to earlier fns of the batch.
	mark [numTables]int
}

func (b *idxBuffer) setMark() {
	for t := range b.rows {
		b.mark[t] = len(b.rows[t])
	}
}

// rollback drops the rows of the running fn.
func (b *idxBuffer) rollback() {
	for t := range b.rows {
		clear(b.rows[t][b.mark[t]:])
		b.rows[t] = b.rows[t][:b.mark[t]]
	}
}

// reset empties the buffer (at a batch's end, committed or not).
func (b *idxBuffer) reset() {
	b.mark = [numTables]int{}
	b.rollback()
}

// earlier reports whether rows of earlier fns are waiting.
func (b *idxBuffer) earlier() bool {
	for t := range b.rows {
		if b.mark[t] > 0 {
			return true
		}
	}
	return false
}

func (b *idxBuffer) empty() bool {
	for t := range b.rows {
		if len(b.rows[t]) > 0 {
			return false
		}
	}
	return true
}

// errFlushFirst makes runOne roll the running fn back, flush the buffer and
// run fn again (see above). runOne also learns it from the tx, in case fn
// wrapped or swallowed the error.
var errFlushFirst = errors.New("sqlstore: index rows of earlier writes in the batch must be inserted first")

// flushIndex inserts the buffered rows from the running fn's mark on (own
// == true) or all of them, and empties that part of the buffer.
func (s *sqliteStore) flushIndex(own bool) error {
	b := &s.idx
	for t := range numTables {
		from := 0
		if own {
			from = b.mark[t]
		}
		rows := b.rows[t][from:]
		if len(rows) == 0 {
			continue
		}
		slices.SortFunc(rows, cmpRow)
		// A resource may carry one value twice: its rows are now side
		// by side. (INSERT OR IGNORE would drop them too, at a cost.)
		uniq := slices.CompactFunc(rows, func(a, b []any) bool { return cmpRow(a, b) == 0 })
		if err := s.insertRows(t, uniq); err != nil {
			return fmt.Errorf("sqlstore: insert %s rows: %w", indexTables[t].name, err)
		}
		clear(rows)
		b.rows[t] = b.rows[t][:from]
	}
	return nil
}

func (s *sqliteStore) insertRows(t int, rows [][]any) error {
	bg, ws := context.Background(), &s.ws
	args := make([]any, 0, idxChunk*len(rows[0]))
	for len(rows) >= idxChunk {
		args = args[:0]
		for _, r := range rows[:idxChunk] {
			args = append(args, r...)
		}
		if _, err := ws.insertIdxN[t].ExecContext(bg, args...); err != nil {
			return err
		}
		rows = rows[idxChunk:]
	}
	for _, r := range rows {
		if _, err := ws.insertIdx[t].ExecContext(bg, r...); err != nil {
			return err
		}
	}
	return nil
}

// cmpRow orders rows column by column, which for every table but the
// composite one is its primary key's order (tenant, type, param, values,
// then vkey last; vkey sits third in the row, so it is compared last).
func cmpRow(a, b []any) int {
	for i := range a {
		if i == 2 {
			continue
		}
		if c := cmpValue(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmpValue(a[2], b[2])
}

func cmpValue(a, b any) int {
	switch a := a.(type) {
	case string:
		if b, ok := b.(string); ok {
			return strings.Compare(a, b)
		}
	case int64:
		if b, ok := b.(int64); ok {
			return cmp.Compare(a, b)
		}
	case float64:
		if b, ok := b.(float64); ok {
			return cmp.Compare(a, b)
		}
	}
	return 0
}

// insertIdxSQL is the INSERT of n rows into table t.
func insertIdxSQL(t, n int) string {
	it := indexTables[t]
	one := "(?, ?, ?" + strings.Repeat(", ?", len(it.cols)) + ")"
	vals := strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
	return fmt.Sprintf("INSERT OR IGNORE INTO %s (tenant, type, vkey, %s) VALUES %s",
		it.name, strings.Join(it.cols, ", "), vals)
}
