-- Every version ever written, immutable. body is bytea, not jsonb: jsonb
-- reorders keys and drops duplicates, and versions must be served byte-exact.
CREATE TABLE resource_versions (
	tenant       text        NOT NULL,
	type         text        NOT NULL,
	id           text        NOT NULL,
	version_id   bigint      NOT NULL,
	last_updated timestamptz NOT NULL,
	deleted      boolean     NOT NULL DEFAULT false,
	body         bytea       NOT NULL,
	PRIMARY KEY (tenant, type, id, version_id)
);

-- The newest version of each resource; Tx.Read and Put lock this row
-- (FOR UPDATE) so writers of one resource serialize.
CREATE TABLE resource_heads (
	tenant     text    NOT NULL,
	type       text    NOT NULL,
	id         text    NOT NULL,
	version_id bigint  NOT NULL,
	deleted    boolean NOT NULL DEFAULT false,
	PRIMARY KEY (tenant, type, id)
);

-- Identifiers of the current live version only.
CREATE TABLE resource_identifiers (
	tenant text NOT NULL,
	type   text NOT NULL,
	id     text NOT NULL,
	system text NOT NULL,
	value  text NOT NULL,
	PRIMARY KEY (tenant, type, id, system, value)
);
CREATE INDEX resource_identifiers_lookup ON resource_identifiers (tenant, type, system, value);

CREATE TABLE outbox (
	seq     bigserial   PRIMARY KEY,
	tenant  text        NOT NULL,
	topic   text        NOT NULL,
	key     text        NOT NULL,
	payload bytea       NOT NULL,
	created timestamptz NOT NULL
);
CREATE INDEX outbox_tenant_seq ON outbox (tenant, seq);
