-- EHR sync speed (issue 11): leases counts how often a delivery was
-- leased since it was last finished done. A row leased for the first time (leases = 1 after the
-- lease) that has no link was never written, so the worker may create it
-- with a plain POST; a higher count means an earlier holder may have
-- written it without recording the link (killed, stopped, or its answer
-- lost), so the worker searches by identifier first. Rows pending at the
-- upgrade count as leased once: an older worker may have been mid-write.
ALTER TABLE ehr_deliveries ADD COLUMN leases INTEGER NOT NULL DEFAULT 0;
UPDATE ehr_deliveries SET leases = 1 WHERE state <> 'done';
