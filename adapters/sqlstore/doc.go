// Package sqlstore implements fhir.Store on SQLite (the embedded default,
// through modernc.org/sqlite) and on PostgreSQL (through pgx). It owns the
// storage schema, its embedded migrations (migrations/<dialect>/NNNN_*.sql)
// and the transaction machinery: group commit on SQLite, lock-and-retry on
// PostgreSQL. Both backends pass fhirtest.RunStoreSuite.
package sqlstore
