-- Issue 14: a disabled client is refused at once, whichever process
-- disabled it. Every change to auth_clients (through the store, the
-- command line, or by hand) counts up one generation number, in the same
-- transaction; a server checks that one row per request (coalesced
-- between concurrent requests) and reads a client's row again only when
-- it has moved.
CREATE TABLE auth_generation (
	id  integer NOT NULL PRIMARY KEY CHECK (id = 1),
	gen bigint  NOT NULL
);
INSERT INTO auth_generation (id, gen) VALUES (1, 0);
CREATE FUNCTION auth_clients_bump_gen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE auth_generation SET gen = gen + 1 WHERE id = 1;
	RETURN NULL;
END
$$;
CREATE TRIGGER auth_clients_gen AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth_clients
	FOR EACH STATEMENT EXECUTE FUNCTION auth_clients_bump_gen();
