-- The gateway's own authorization (issue 14): the backend services
-- registered to ask for tokens, the keys the gateway signs its access
-- tokens with, and the client assertion ids (jti) already used, kept until
-- the assertion expires so a replay is refused across restarts.
CREATE TABLE auth_clients (
	id        TEXT    NOT NULL PRIMARY KEY,
	tenant    TEXT    NOT NULL,           -- the practice whose resources the client sees
	jwks      TEXT    NOT NULL DEFAULT '', -- registered public JWK Set (JSON), or ''
	jwks_url  TEXT    NOT NULL DEFAULT '', -- where the client publishes its keys, or ''
	scopes    TEXT    NOT NULL,           -- the scopes it may be granted
	disabled  INTEGER NOT NULL DEFAULT 0,
	recipient TEXT    NOT NULL DEFAULT '', -- a prescriber's client: the Practitioner a Consent names; '': the practice's own
	created   INTEGER NOT NULL            -- Unix microseconds, UTC
) WITHOUT ROWID;

-- The gateway's signing keys: the newest live one signs, every one not
-- retired before the longest token lifetime ago verifies.
CREATE TABLE auth_keys (
	kid      TEXT    NOT NULL PRIMARY KEY,
	alg      TEXT    NOT NULL,
	pem      BLOB    NOT NULL, -- PKCS#8 private key
	created  INTEGER NOT NULL,
	retired  INTEGER NOT NULL DEFAULT 0 -- Unix microseconds; 0: live
) WITHOUT ROWID;

CREATE TABLE auth_jti (
	id    TEXT    NOT NULL PRIMARY KEY, -- client id, NUL, jti
	until INTEGER NOT NULL              -- Unix microseconds: forgotten after
) WITHOUT ROWID;
CREATE INDEX auth_jti_until ON auth_jti (until);
