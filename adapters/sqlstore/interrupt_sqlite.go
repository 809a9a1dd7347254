package sqlstore

import "strings"

// How an SQLite search stops when its context ends.
//
// modernc.org/sqlite (v1.62) interrupts a statement (sqlite3_interrupt,
// plus a progress handler every 1000 VM steps for an interrupt that would
// otherwise be lost) only while the Query call itself runs, that is while
// SQLite computes the first row. Rows.Next steps the statement with no
// interrupt armed: a search that finds its first match at once and the
// next ones only after scanning the rest of the table would run to the end
// whatever its context says, and database/sql's own close-on-cancel waits
// for the Next in progress. So every search statement is wrapped to do all
// its work before it returns its first row (materialized): the inner
// statement fills a temporary b-tree in the first step, and Next only reads
// it back. The inner statement is planned exactly as on its own (a
// MATERIALIZED common table expression is never flattened into the outer
// query), and its rows are at most a page (LIMIT), a count or the keys of
// an _include, so the copy costs little. The outer query scans the
// materialization in the order it was filled, which is the inner ORDER BY
// (every ordered search statement also has a LIMIT, so SQLite keeps that
// ORDER BY).
//
// On the read pool an interrupted connection is discarded by the driver
// (it reports itself invalid while interrupted) and the pool opens another.
//
// On the single writer connection, a conditional create or update searches
// inside the group-commit transaction, which holds other callers' writes.
// Cancelling a *write* statement there would make SQLite roll the whole
// transaction back; cancelling a *read-only* statement does not: SQLite
// rolls back on SQLITE_INTERRUPT only when the interrupted statement
// writes (sqlite3VdbeHalt), and the interrupt flag is cleared when the next
// statement starts with nothing else running. So the in-transaction search
// (materialized, and run with the caller's context) is the one thing on
// the writer connection that a context can stop, while every write keeps
// running with context.Background(). The driver disarms the interrupt
// before the Query call returns, so a context ending later cannot hit a
// write that runs after it. TestSQLiteTxSearchInterruptKeepsBatch proves
// the batch survives.

// materialized wraps a SELECT so that SQLite computes all its rows in the
// first step, where the driver can interrupt it (see above). A count (an
// aggregate without GROUP BY) does that already: its one row comes after
// all the work.
func materialized(q string) string {
	if strings.HasPrefix(q, "SELECT count(*) FROM ") {
		return q
	}
	return "WITH kb_q AS MATERIALIZED (" + q + ") SELECT * FROM kb_q"
}
