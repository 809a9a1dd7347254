-- Practice records (issue 5); see the SQLite migration of the same number
-- for what the columns mean.
CREATE TABLE practice_records (
	tenant    text        NOT NULL,
	kind      text        NOT NULL,
	id        text        NOT NULL,
	parent    text        NOT NULL DEFAULT '',
	body      bytea       NOT NULL,
	hash      text        NOT NULL,
	state     text        NOT NULL,
	pending   text        NOT NULL DEFAULT '[]',
	resources text        NOT NULL DEFAULT '[]',
	reasons   text        NOT NULL DEFAULT '[]',
	updated   timestamptz NOT NULL,
	PRIMARY KEY (tenant, kind, id)
);
CREATE INDEX practice_records_parent ON practice_records (tenant, kind, parent);
CREATE INDEX practice_records_state ON practice_records (tenant, state, kind, id);

CREATE TABLE practice_pending (
	tenant text NOT NULL,
	ref    text NOT NULL,
	kind   text NOT NULL,
	id     text NOT NULL,
	PRIMARY KEY (tenant, ref, kind, id)
);
CREATE INDEX practice_pending_record ON practice_pending (tenant, kind, id);

CREATE TABLE idempotency_keys (
	tenant       text        NOT NULL,
	key          text        NOT NULL,
	request_hash text        NOT NULL,
	status       integer     NOT NULL,
	response     bytea       NOT NULL,
	created      timestamptz NOT NULL,
	PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
