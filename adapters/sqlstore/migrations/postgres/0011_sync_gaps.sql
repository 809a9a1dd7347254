-- EHR sync gaps (issue 11): a connection may authenticate with a client
-- secret (HTTP Basic) instead of a key; a link keeps the body last
-- written where later changes go as patches computed from it; an inbound
-- resource that could not be used keeps the reason; and the outbox is
-- pruned by age once fanned out (an index on created for it).
ALTER TABLE ehr_connections ADD COLUMN client_secret bytea NOT NULL DEFAULT '';
ALTER TABLE ehr_links ADD COLUMN body bytea NOT NULL DEFAULT '';
ALTER TABLE ehr_inbound_taken ADD COLUMN reason text NOT NULL DEFAULT '';
CREATE INDEX outbox_ehr_fanned ON outbox (created) WHERE topic = 'ehr.change' AND ehr_fanned;
CREATE INDEX ehr_deliveries_done ON ehr_deliveries (state, updated);
CREATE INDEX ehr_deliveries_resource ON ehr_deliveries (tenant, type, resource_id);
