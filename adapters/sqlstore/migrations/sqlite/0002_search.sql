-- Search: a global commit sequence and index tables whose rows carry the
-- span of sequence numbers during which they were current, so a search can
-- be evaluated as of a snapshot (a seq) and paging stays stable while
-- writers go on.
--
-- seq orders every version ever written. The single writer assigns it (one
-- per Put, increasing), so seq order is commit order and the largest
-- committed seq is a consistent snapshot. Rows written before this
-- migration take their rowid, which grew the same way.
ALTER TABLE resource_versions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE resource_versions SET seq = rowid;
-- (seq) answers max(seq), the snapshot, without a scan; (tenant, seq)
-- serves system history.
CREATE UNIQUE INDEX resource_versions_seq ON resource_versions (seq);
CREATE INDEX resource_versions_tenant_seq ON resource_versions (tenant, seq);
CREATE INDEX resource_versions_type_seq ON resource_versions (tenant, type, seq);

-- One row per live (not deleted) version: current from from_seq until
-- to_seq (9223372036854775807 while current). vkey names the version for
-- its index rows (here it is the version's seq: unique, and increasing, so
-- new index rows land at the right edge of their indexes instead of at
-- random places as random resource ids would put them). The key leads with
-- the id so a scan of one type comes out in the default sort order.
CREATE TABLE search_res (
	tenant       TEXT    NOT NULL,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version_id   INTEGER NOT NULL,
	last_updated INTEGER NOT NULL, -- Unix microseconds, UTC
	vkey         INTEGER NOT NULL,
	from_seq     INTEGER NOT NULL,
	to_seq       INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, id, version_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX search_res_vkey ON search_res (vkey);
CREATE INDEX search_res_last_updated ON search_res (tenant, type, last_updated);
-- Existing live resources stay findable by _id and _lastUpdated; their
-- parameter values appear when they are next written.
INSERT INTO search_res (tenant, type, id, version_id, last_updated, vkey, from_seq, to_seq)
	SELECT v.tenant, v.type, v.id, v.version_id, v.last_updated, v.seq, v.seq, 9223372036854775807
	FROM resource_heads h JOIN resource_versions v
		ON v.tenant = h.tenant AND v.type = h.type AND v.id = h.id AND v.version_id = h.version_id
	WHERE h.deleted = 0;

-- Index tables: the values of one version (vkey). They need no validity
-- span of their own: a search reaches them through a search_res row that
-- is current at its snapshot, and a new version only closes that row. The
-- primary key is the lookup direction (parameter, value, version), so a
-- selective clause can drive a search; the vkey index is the version
-- direction (is this version's value a match?), covering thanks to
-- WITHOUT ROWID.
CREATE TABLE search_token (
	tenant      TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	param       TEXT    NOT NULL,
	code        TEXT    NOT NULL,
	system      TEXT    NOT NULL,
	type_system TEXT    NOT NULL,
	type_code   TEXT    NOT NULL,
	text        TEXT    NOT NULL,
	vkey        INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, code, system, type_system, type_code, text, vkey)
) WITHOUT ROWID;
CREATE INDEX search_token_v ON search_token (vkey, param);

CREATE TABLE search_string (
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	norm   TEXT    NOT NULL,
	exact  TEXT    NOT NULL,
	vkey   INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, norm, exact, vkey)
) WITHOUT ROWID;
CREATE INDEX search_string_v ON search_string (vkey, param);

CREATE TABLE search_date (
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	lo     INTEGER NOT NULL,
	hi     INTEGER NOT NULL,
	vkey   INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, lo, hi, vkey)
) WITHOUT ROWID;
CREATE INDEX search_date_v ON search_date (vkey, param);

-- number and quantity (system, code: the unit).
CREATE TABLE search_number (
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	lo     REAL    NOT NULL,
	hi     REAL    NOT NULL,
	system TEXT    NOT NULL,
	code   TEXT    NOT NULL,
	vkey   INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, lo, hi, system, code, vkey)
) WITHOUT ROWID;
CREATE INDEX search_number_v ON search_number (vkey, param);

-- ref_id before ref_type: a search by id alone still uses the key.
CREATE TABLE search_ref (
	tenant      TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	param       TEXT    NOT NULL,
	ref_id      TEXT    NOT NULL,
	ref_type    TEXT    NOT NULL,
	url         TEXT    NOT NULL,
	ref_version TEXT    NOT NULL,
	vkey        INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, ref_id, ref_type, url, ref_version, vkey)
) WITHOUT ROWID;
CREATE INDEX search_ref_v ON search_ref (vkey, param);
-- _revinclude of any parameter (*), _has: who points at ref_type/ref_id.
CREATE INDEX search_ref_target ON search_ref (tenant, ref_id, ref_type);

CREATE TABLE search_uri (
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	uri    TEXT    NOT NULL,
	vkey   INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, uri, vkey)
) WITHOUT ROWID;
CREATE INDEX search_uri_v ON search_uri (vkey, param);

-- Composite: up to three components flattened into one row, so components
-- of one value match together. Per component i: s (system / reference
-- type), c (code / normalized string / uri / reference id), e (display /
-- exact string / reference URL), nlo, nhi (number, quantity), dlo, dhi
-- (date).
CREATE TABLE search_composite (
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	s1 TEXT NOT NULL, c1 TEXT NOT NULL, e1 TEXT NOT NULL, nlo1 REAL NOT NULL, nhi1 REAL NOT NULL, dlo1 INTEGER NOT NULL, dhi1 INTEGER NOT NULL,
	s2 TEXT NOT NULL, c2 TEXT NOT NULL, e2 TEXT NOT NULL, nlo2 REAL NOT NULL, nhi2 REAL NOT NULL, dlo2 INTEGER NOT NULL, dhi2 INTEGER NOT NULL,
	s3 TEXT NOT NULL, c3 TEXT NOT NULL, e3 TEXT NOT NULL, nlo3 REAL NOT NULL, nhi3 REAL NOT NULL, dlo3 INTEGER NOT NULL, dhi3 INTEGER NOT NULL,
	vkey   INTEGER NOT NULL,
	PRIMARY KEY (tenant, type, param, c1, s1, c2, s2, c3, s3, nlo1, nhi1, dlo1, dhi1, nlo2, nhi2, dlo2, dhi2, nlo3, nhi3, dlo3, dhi3, e1, e2, e3, vkey)
) WITHOUT ROWID;
CREATE INDEX search_composite_v ON search_composite (vkey, param);
