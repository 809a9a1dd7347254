-- EHR sync (issue 11): connections, the delivery queue fed from the
-- outbox, the link table and the patient links. Times are Unix
-- microseconds, UTC.

-- An outbox message of topic ehr.change is taken once, by Fanout, which
-- turns it into deliveries; ehr_fanned marks it taken (a flag, not a
-- cursor: PostgreSQL takes a seq at insert, not at commit).
ALTER TABLE outbox ADD COLUMN ehr_fanned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_ehr_pending ON outbox (tenant, seq) WHERE topic = 'ehr.change' AND ehr_fanned = 0;

CREATE TABLE ehr_connections (
	name       TEXT    PRIMARY KEY,
	tenant     TEXT    NOT NULL,
	base_url   TEXT    NOT NULL,
	token_url  TEXT    NOT NULL,
	client_id  TEXT    NOT NULL,
	key_file   TEXT    NOT NULL,
	key_pem    BLOB    NOT NULL,
	scopes     TEXT    NOT NULL,
	practice   TEXT    NOT NULL,
	mrn_system TEXT    NOT NULL,
	recipient  TEXT    NOT NULL,
	created    INTEGER NOT NULL
);

-- One row per resource and connection: changes coalesce (gen counts
-- them); lease_owner/lease_until are the row lease a worker holds.
CREATE TABLE ehr_deliveries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	connection  TEXT    NOT NULL,
	tenant      TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	resource_id TEXT    NOT NULL,
	gen         INTEGER NOT NULL,
	state       TEXT    NOT NULL, -- pending, done, dead
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL,
	lease_owner TEXT    NOT NULL DEFAULT '',
	lease_until INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	outcome     BLOB    NOT NULL DEFAULT x'',
	updated     INTEGER NOT NULL,
	UNIQUE (connection, tenant, type, resource_id)
);
CREATE INDEX ehr_deliveries_due ON ehr_deliveries (connection, state, next_at, id);
CREATE INDEX ehr_deliveries_lease ON ehr_deliveries (lease_owner) WHERE lease_owner <> '';

CREATE TABLE ehr_links (
	connection     TEXT    NOT NULL,
	tenant         TEXT    NOT NULL,
	source_type    TEXT    NOT NULL,
	source_id      TEXT    NOT NULL,
	part           TEXT    NOT NULL,
	remote_type    TEXT    NOT NULL,
	remote_id      TEXT    NOT NULL,
	remote_version TEXT    NOT NULL,
	hash           TEXT    NOT NULL,
	updated        INTEGER NOT NULL,
	PRIMARY KEY (connection, tenant, source_type, source_id, part)
) WITHOUT ROWID;
CREATE INDEX ehr_links_remote ON ehr_links (connection, remote_type, remote_id);

CREATE TABLE ehr_patient_links (
	connection TEXT    NOT NULL,
	tenant     TEXT    NOT NULL,
	patient_id TEXT    NOT NULL,
	state      TEXT    NOT NULL, -- linked, waiting
	remote_id  TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	updated    INTEGER NOT NULL,
	PRIMARY KEY (connection, tenant, patient_id)
) WITHOUT ROWID;
