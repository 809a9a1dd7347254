-- Practice records (issue 5): each record as the gateway holds it, beside
-- the FHIR resources made from it; written in the same transaction as
-- those resources, so a crash never separates the two.
--
-- body is the record's canonical JSON, hash its SHA-256: an identical
-- re-import is recognised without mapping. parent is the id of the record
-- this one hangs under (a session's course, ...), so a course's sessions
-- are found without decoding every record. pending, resources and reasons
-- are JSON arrays of strings.
CREATE TABLE practice_records (
	tenant    TEXT    NOT NULL,
	kind      TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	parent    TEXT    NOT NULL DEFAULT '',
	body      BLOB    NOT NULL,
	hash      TEXT    NOT NULL,
	state     TEXT    NOT NULL, -- mapped, pending, rejected
	pending   TEXT    NOT NULL DEFAULT '[]',
	resources TEXT    NOT NULL DEFAULT '[]',
	reasons   TEXT    NOT NULL DEFAULT '[]',
	updated   INTEGER NOT NULL, -- Unix microseconds, UTC
	PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;
CREATE INDEX practice_records_parent ON practice_records (tenant, kind, parent);
CREATE INDEX practice_records_state ON practice_records (tenant, state, kind, id);

-- Who waits for what: one row per reference ("kind/id") a pending record
-- lacks, so the record that completes it finds its waiters by index.
CREATE TABLE practice_pending (
	tenant TEXT NOT NULL,
	ref    TEXT NOT NULL,
	kind   TEXT NOT NULL,
	id     TEXT NOT NULL,
	PRIMARY KEY (tenant, ref, kind, id)
) WITHOUT ROWID;
CREATE INDEX practice_pending_record ON practice_pending (tenant, kind, id);

-- Answers to ingestion requests that carried an Idempotency-Key, honoured
-- for 24 hours.
CREATE TABLE idempotency_keys (
	tenant       TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash TEXT    NOT NULL,
	status       INTEGER NOT NULL,
	response     BLOB    NOT NULL,
	created      INTEGER NOT NULL, -- Unix microseconds, UTC
	PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
