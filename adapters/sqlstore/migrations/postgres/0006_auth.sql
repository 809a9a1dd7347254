-- The gateway's own authorization (issue 14): the backend services
-- registered to ask for tokens, the keys the gateway signs its access
-- tokens with, and the client assertion ids (jti) already used, kept until
-- the assertion expires so a replay is refused across restarts.
CREATE TABLE auth_clients (
	id        text    NOT NULL PRIMARY KEY,
	tenant    text    NOT NULL,
	jwks      text    NOT NULL DEFAULT '',
	jwks_url  text    NOT NULL DEFAULT '',
	scopes    text    NOT NULL,
	disabled  boolean NOT NULL DEFAULT false,
	recipient text    NOT NULL DEFAULT '',
	created   timestamptz NOT NULL
);

CREATE TABLE auth_keys (
	kid      text    NOT NULL PRIMARY KEY,
	alg      text    NOT NULL,
	pem      bytea   NOT NULL,
	created  timestamptz NOT NULL,
	retired  timestamptz
);

CREATE TABLE auth_jti (
	id    bytea       NOT NULL PRIMARY KEY, -- client id, NUL, jti (NUL is not text)
	until timestamptz NOT NULL
);
CREATE INDEX auth_jti_until ON auth_jti (until);
