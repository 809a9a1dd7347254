-- Every version ever written, immutable. A plain rowid table (not WITHOUT
-- ROWID) because bodies can be megabytes.
CREATE TABLE resource_versions (
	tenant       TEXT    NOT NULL,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version_id   INTEGER NOT NULL,
	last_updated INTEGER NOT NULL, -- Unix microseconds, UTC
	deleted      INTEGER NOT NULL DEFAULT 0,
	body         BLOB    NOT NULL, -- the JSON bytes exactly as given
	PRIMARY KEY (tenant, type, id, version_id)
);

-- The newest version of each resource: one small row to check and bump.
CREATE TABLE resource_heads (
	tenant     TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	version_id INTEGER NOT NULL,
	deleted    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;

-- Identifiers of the current live version only. The primary key leads with
-- the resource so a Put can replace its rows cheaply.
CREATE TABLE resource_identifiers (
	tenant TEXT NOT NULL,
	type   TEXT NOT NULL,
	id     TEXT NOT NULL,
	system TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (tenant, type, id, system, value)
) WITHOUT ROWID;
CREATE INDEX resource_identifiers_lookup ON resource_identifiers (tenant, type, system, value);

-- AUTOINCREMENT so a seq is never reused once delivered rows are deleted.
CREATE TABLE outbox (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant  TEXT    NOT NULL,
	topic   TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	payload BLOB    NOT NULL,
	created INTEGER NOT NULL -- Unix microseconds, UTC
);
CREATE INDEX outbox_tenant_seq ON outbox (tenant, seq);
