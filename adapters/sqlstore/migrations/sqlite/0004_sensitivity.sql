-- Disclosure (issue 9): every version records its fhir.Sensitivity, the
-- disclosure-restricting labels of its meta.security (bits: 1 v3-ActCode
-- PSYTHPN, 2 v3-Confidentiality V, 4 v3-Confidentiality R). A deletion
-- records those of the version it deleted. search_res carries it too, so a
-- search leaves what its caller may not see out of matches, counts, _has,
-- chains and includes alike, and history does the same from
-- resource_versions. From now on Put computes it (fhir.SensitivityOfJSON);
-- the statements below compute it once for what is already stored, by the
-- same rule.
ALTER TABLE resource_versions ADD COLUMN sensitivity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_heads ADD COLUMN sensitivity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_res ADD COLUMN sensitivity INTEGER NOT NULL DEFAULT 0;

-- Bodies are BLOBs, which SQLite's JSON functions would read as JSONB:
-- cast them to text. Only bodies mentioning a label are parsed.
UPDATE resource_versions SET sensitivity =
	  (CASE WHEN EXISTS (SELECT 1 FROM json_each(CAST(body AS TEXT), '$.meta.security') l
		WHERE json_extract(l.value, '$.system') = 'http://terminology.hl7.org/CodeSystem/v3-ActCode'
		AND json_extract(l.value, '$.code') = 'PSYTHPN') THEN 1 ELSE 0 END)
	| (CASE WHEN EXISTS (SELECT 1 FROM json_each(CAST(body AS TEXT), '$.meta.security') l
		WHERE json_extract(l.value, '$.system') = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality'
		AND json_extract(l.value, '$.code') = 'V') THEN 2 ELSE 0 END)
	| (CASE WHEN EXISTS (SELECT 1 FROM json_each(CAST(body AS TEXT), '$.meta.security') l
		WHERE json_extract(l.value, '$.system') = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality'
		AND json_extract(l.value, '$.code') = 'R') THEN 4 ELSE 0 END)
WHERE deleted = 0 AND json_valid(CAST(body AS TEXT))
	AND (instr(body, CAST('"PSYTHPN"' AS BLOB)) > 0 OR instr(body, CAST('v3-Confidentiality' AS BLOB)) > 0);
-- A body that does not parse but mentions PSYTHPN is taken as a note.
UPDATE resource_versions SET sensitivity = 1
WHERE deleted = 0 AND NOT json_valid(CAST(body AS TEXT)) AND instr(body, CAST('"PSYTHPN"' AS BLOB)) > 0;
-- A deletion keeps what it deleted (a version is never deleted twice in a
-- row, so one step back is enough).
UPDATE resource_versions SET sensitivity = coalesce((SELECT p.sensitivity FROM resource_versions p
	WHERE p.tenant = resource_versions.tenant AND p.type = resource_versions.type AND p.id = resource_versions.id
	AND p.version_id = resource_versions.version_id - 1), 0)
WHERE deleted = 1;
UPDATE resource_heads SET sensitivity = (SELECT v.sensitivity FROM resource_versions v
	WHERE v.tenant = resource_heads.tenant AND v.type = resource_heads.type AND v.id = resource_heads.id
	AND v.version_id = resource_heads.version_id)
WHERE (tenant, type, id) IN (SELECT tenant, type, id FROM resource_versions WHERE sensitivity <> 0);
UPDATE search_res SET sensitivity = (SELECT v.sensitivity FROM resource_versions v
	WHERE v.tenant = search_res.tenant AND v.type = search_res.type AND v.id = search_res.id
	AND v.version_id = search_res.version_id)
WHERE (tenant, type, id, version_id) IN (SELECT tenant, type, id, version_id FROM resource_versions WHERE sensitivity <> 0);
