-- EHR sync, inbound (issue 11): how far each linked patient's resources
-- were polled from each EHR, the remote versions taken in, and the
-- conflicts the ownership rules decided. Times are Unix microseconds, UTC.

CREATE TABLE ehr_inbound_cursors (
	connection TEXT    NOT NULL,
	tenant     TEXT    NOT NULL,
	patient    TEXT    NOT NULL, -- the practice's client id
	type       TEXT    NOT NULL,
	since      INTEGER NOT NULL, -- newest change taken in
	polled     INTEGER NOT NULL,
	PRIMARY KEY (connection, tenant, patient, type)
) WITHOUT ROWID;

-- One row per remote resource: the version last taken, so overlapping
-- windows and re-polls after a crash take nothing twice.
CREATE TABLE ehr_inbound_taken (
	connection TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	remote_id  TEXT    NOT NULL,
	version_id TEXT    NOT NULL,
	hash       TEXT    NOT NULL,
	outcome    TEXT    NOT NULL, -- applied, echo, kept, conflict
	at         INTEGER NOT NULL,
	PRIMARY KEY (connection, type, remote_id)
) WITHOUT ROWID;

CREATE TABLE ehr_inbound_conflicts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	connection TEXT    NOT NULL,
	tenant     TEXT    NOT NULL,
	remote     TEXT    NOT NULL, -- Type/id/_history/v
	local      TEXT    NOT NULL, -- kind/id
	field      TEXT    NOT NULL,
	owner      TEXT    NOT NULL, -- practice, ehr
	practice   TEXT    NOT NULL,
	ehr        TEXT    NOT NULL,
	resolution TEXT    NOT NULL,
	at         INTEGER NOT NULL,
	UNIQUE (connection, tenant, remote, field)
);
