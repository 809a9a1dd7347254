-- Search: search_res has a row per live version carrying the transaction
-- ids (xid8) that made it current (from_seq) and superseded it (to_seq,
-- NULL while current); the index tables hold each version's values under
-- its vkey. A search reads "as of" a pg_snapshot taken at its first page:
-- a version is visible when from_seq is visible in the snapshot and to_seq
-- is not. PostgreSQL decides visibility the way it does for its own MVCC, so
-- a transaction that commits after the snapshot stays invisible on later
-- pages even if its id is lower than others (which a plain sequence taken
-- at insert time could not promise without serializing commits).
--
-- resource_versions.seq is the writer's transaction id: history is ordered
-- by it, newest first; versions written before this migration get the
-- migration's own id.
ALTER TABLE resource_versions ADD COLUMN seq xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX resource_versions_seq ON resource_versions (tenant, seq);
CREATE INDEX resource_versions_type_seq ON resource_versions (tenant, type, seq);

CREATE SEQUENCE search_vkey;
CREATE TABLE search_res (
	tenant       text   NOT NULL,
	type         text   NOT NULL,
	id           text   NOT NULL,
	version_id   bigint NOT NULL,
	last_updated bigint NOT NULL, -- Unix microseconds, as in SQLite
	vkey         bigint NOT NULL DEFAULT nextval('search_vkey'),
	from_seq     xid8   NOT NULL DEFAULT pg_current_xact_id(),
	to_seq       xid8,
	PRIMARY KEY (tenant, type, id, version_id)
);
CREATE UNIQUE INDEX search_res_vkey ON search_res (vkey);
CREATE INDEX search_res_last_updated ON search_res (tenant, type, last_updated);
INSERT INTO search_res (tenant, type, id, version_id, last_updated, from_seq)
	SELECT v.tenant, v.type, v.id, v.version_id, (extract(epoch FROM v.last_updated) * 1000000)::bigint, v.seq
	FROM resource_heads h JOIN resource_versions v
		ON v.tenant = h.tenant AND v.type = h.type AND v.id = h.id AND v.version_id = h.version_id
	WHERE NOT h.deleted;

-- Index tables are heaps (the writer removes duplicate values itself, and
-- free text is kept out of btree keys, which have a size limit). Each has a
-- lookup index (parameter, value) and a version index (vkey).
CREATE TABLE search_token (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	code text NOT NULL, system text NOT NULL, type_system text NOT NULL, type_code text NOT NULL, text text NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_token_lookup ON search_token (tenant, type, param, code, system);
CREATE INDEX search_token_v ON search_token (vkey);

CREATE TABLE search_string (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	norm text NOT NULL, exact text NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_string_lookup ON search_string (tenant, type, param, left(norm, 64) text_pattern_ops);
CREATE INDEX search_string_v ON search_string (vkey);

CREATE TABLE search_date (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	lo bigint NOT NULL, hi bigint NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_date_lookup ON search_date (tenant, type, param, lo, hi);
CREATE INDEX search_date_v ON search_date (vkey);

CREATE TABLE search_number (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	lo double precision NOT NULL, hi double precision NOT NULL, system text NOT NULL, code text NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_number_lookup ON search_number (tenant, type, param, lo, hi);
CREATE INDEX search_number_v ON search_number (vkey);

CREATE TABLE search_ref (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	ref_id text NOT NULL, ref_type text NOT NULL, url text NOT NULL, ref_version text NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_ref_lookup ON search_ref (tenant, type, param, ref_id, ref_type);
CREATE INDEX search_ref_v ON search_ref (vkey);
CREATE INDEX search_ref_target ON search_ref (tenant, ref_id, ref_type);

CREATE TABLE search_uri (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	uri text NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_uri_lookup ON search_uri (tenant, type, param, left(uri, 256));
CREATE INDEX search_uri_v ON search_uri (vkey);

-- Composite: up to three components flattened (see the SQLite migration
-- for the column meanings).
CREATE TABLE search_composite (
	tenant text NOT NULL, type text NOT NULL, param text NOT NULL,
	s1 text NOT NULL, c1 text NOT NULL, e1 text NOT NULL, nlo1 double precision NOT NULL, nhi1 double precision NOT NULL, dlo1 bigint NOT NULL, dhi1 bigint NOT NULL,
	s2 text NOT NULL, c2 text NOT NULL, e2 text NOT NULL, nlo2 double precision NOT NULL, nhi2 double precision NOT NULL, dlo2 bigint NOT NULL, dhi2 bigint NOT NULL,
	s3 text NOT NULL, c3 text NOT NULL, e3 text NOT NULL, nlo3 double precision NOT NULL, nhi3 double precision NOT NULL, dlo3 bigint NOT NULL, dhi3 bigint NOT NULL,
	vkey bigint NOT NULL
);
CREATE INDEX search_composite_lookup ON search_composite (tenant, type, param, left(c1, 128), left(c2, 128));
CREATE INDEX search_composite_v ON search_composite (vkey);
