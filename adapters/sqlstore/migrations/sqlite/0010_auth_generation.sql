-- Issue 14: a disabled client is refused at once, whichever process
-- disabled it. Every change to auth_clients (through the store, the
-- command line, or by hand) counts up one generation number, in the same
-- transaction; a server checks that one row per request (coalesced
-- between concurrent requests) and reads a client's row again only when
-- it has moved.
CREATE TABLE auth_generation (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	gen INTEGER NOT NULL
);
INSERT INTO auth_generation (id, gen) VALUES (1, 0);
CREATE TRIGGER auth_clients_insert_gen AFTER INSERT ON auth_clients
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER auth_clients_update_gen AFTER UPDATE ON auth_clients
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER auth_clients_delete_gen AFTER DELETE ON auth_clients
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
