-- EHR sync (issue 11): connections, the delivery queue fed from the
-- outbox, the link table and the patient links.

-- An outbox message of topic ehr.change is taken once, by Fanout, which
-- turns it into deliveries; ehr_fanned marks it taken (a flag, not a
-- cursor: a bigserial seq is taken at insert, not at commit, so "after
-- seq N" could skip a message committed late). Fanout takes rows FOR
-- UPDATE SKIP LOCKED.
ALTER TABLE outbox ADD COLUMN ehr_fanned boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_ehr_pending ON outbox (tenant, seq) WHERE topic = 'ehr.change' AND NOT ehr_fanned;

CREATE TABLE ehr_connections (
	name       text        PRIMARY KEY,
	tenant     text        NOT NULL,
	base_url   text        NOT NULL,
	token_url  text        NOT NULL,
	client_id  text        NOT NULL,
	key_file   text        NOT NULL,
	key_pem    bytea       NOT NULL,
	scopes     text        NOT NULL,
	practice   text        NOT NULL,
	mrn_system text        NOT NULL,
	recipient  text        NOT NULL,
	created    timestamptz NOT NULL
);

-- One row per resource and connection: changes coalesce (gen counts
-- them); lease_owner/lease_until are the row lease a worker holds, taken
-- with FOR UPDATE SKIP LOCKED.
CREATE TABLE ehr_deliveries (
	id          bigserial   PRIMARY KEY,
	connection  text        NOT NULL,
	tenant      text        NOT NULL,
	type        text        NOT NULL,
	resource_id text        NOT NULL,
	gen         bigint      NOT NULL,
	state       text        NOT NULL, -- pending, done, dead
	attempts    integer     NOT NULL DEFAULT 0,
	next_at     timestamptz NOT NULL,
	lease_owner text        NOT NULL DEFAULT '',
	lease_until timestamptz NOT NULL DEFAULT 'epoch',
	last_error  text        NOT NULL DEFAULT '',
	outcome     bytea       NOT NULL DEFAULT '',
	updated     timestamptz NOT NULL,
	UNIQUE (connection, tenant, type, resource_id)
);
CREATE INDEX ehr_deliveries_due ON ehr_deliveries (connection, state, next_at, id);
CREATE INDEX ehr_deliveries_lease ON ehr_deliveries (lease_owner) WHERE lease_owner <> '';

CREATE TABLE ehr_links (
	connection     text        NOT NULL,
	tenant         text        NOT NULL,
	source_type    text        NOT NULL,
	source_id      text        NOT NULL,
	part           text        NOT NULL,
	remote_type    text        NOT NULL,
	remote_id      text        NOT NULL,
	remote_version text        NOT NULL,
	hash           text        NOT NULL,
	updated        timestamptz NOT NULL,
	PRIMARY KEY (connection, tenant, source_type, source_id, part)
);
CREATE INDEX ehr_links_remote ON ehr_links (connection, remote_type, remote_id);

CREATE TABLE ehr_patient_links (
	connection text        NOT NULL,
	tenant     text        NOT NULL,
	patient_id text        NOT NULL,
	state      text        NOT NULL, -- linked, waiting
	remote_id  text        NOT NULL,
	reason     text        NOT NULL,
	updated    timestamptz NOT NULL,
	PRIMARY KEY (connection, tenant, patient_id)
);
