-- REST (issue 13): every version records the HTTP method of the
-- interaction that wrote it (POST, PUT, PATCH, DELETE), which a history
-- Bundle reports: version 1 of a resource created by PUT is a PUT, not a
-- POST. Versions stored before this keep '' and are reported as before
-- (fhir.MethodOf): DELETE for a deletion, POST for version 1, PUT
-- otherwise.
ALTER TABLE resource_versions ADD COLUMN method TEXT NOT NULL DEFAULT '';
