// Package sqlstore implements fhir.Store on SQLite (the embedded default,
// through modernc.org/sqlite) and on PostgreSQL (through pgx). It owns the
// storage schema, its embedded migrations (migrations/<dialect>/NNNN_*.sql)
// and the transaction machinery: group commit on SQLite, lock-and-retry on
// PostgreSQL. Both backends pass fhirtest.RunStoreSuite.
//
// # Search
//
// Both stores also offer Search, HistoryPage and, on their Tx, Search (the
// server reaches them through its own small interfaces); both pass
// fhirtest.RunSearchSuite. Put adds a row per live version to search_res
// (id, version, lastUpdated: _id and _lastUpdated come from there; vkey,
// a number naming the version) and stores the version's fhir.IndexEntry
// values under that vkey in one table per parameter type (search_token,
// search_string, search_date, search_number for number and quantity,
// search_ref, search_uri, search_composite). A search_res row carries the
// span during which its version was current, [from_seq, to_seq): a Put
// closes the previous version's row and inserts its own; a deletion only
// closes. Index rows are never updated. A search evaluates each clause as
// an EXISTS on the index rows of search_res rows current at one snapshot,
// so all pages of a search see the same data however the store changes
// meanwhile (keyset paging on the sort values and id does the rest).
//
// The snapshot is, on SQLite, a sequence number: the single writer gives
// each Put the next seq and commits a batch at once, so the largest
// committed seq names a consistent state. On PostgreSQL, sequence values
// are taken at insert but become visible at commit, in another order, so
// rows carry the writer's transaction id (xid8) instead and a search keeps
// the pg_snapshot of its first page, asking pg_visible_in_snapshot for
// each row: exactly PostgreSQL's own visibility, with no serialization of
// writers. The snapshot text rides in the cursor (the last After value);
// Cursor.Snapshot holds its xmin.
//
// Unsupported (Search returns an error wrapping ErrUnsupported): the
// reference modifier :identifier, token :in/:not-in/:above/:below,
// parameters of type special, composites of more than three components,
// and paging inside a transaction.
package sqlstore
