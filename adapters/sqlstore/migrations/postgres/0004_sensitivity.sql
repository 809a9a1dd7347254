-- Disclosure (issue 9): every version records its fhir.Sensitivity, the
-- disclosure-restricting labels of its meta.security (bits: 1 v3-ActCode
-- PSYTHPN, 2 v3-Confidentiality V, 4 v3-Confidentiality R). A deletion
-- records those of the version it deleted. search_res carries it too, so a
-- search leaves what its caller may not see out of matches, counts, _has,
-- chains and includes alike, and history does the same from
-- resource_versions. From now on Put computes it (fhir.SensitivityOfJSON);
-- the statements below compute it once for what is already stored, by the
-- same rule.
ALTER TABLE resource_versions ADD COLUMN sensitivity integer NOT NULL DEFAULT 0;
ALTER TABLE resource_heads ADD COLUMN sensitivity integer NOT NULL DEFAULT 0;
ALTER TABLE search_res ADD COLUMN sensitivity integer NOT NULL DEFAULT 0;

-- A body that does not parse as JSON but mentions PSYTHPN is taken as a
-- note; jsonb containment ignores a label's other members (display).
CREATE FUNCTION pg_temp.kb_sensitivity(b bytea) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	t text;
	sec jsonb;
	s integer := 0;
BEGIN
	BEGIN
		t := convert_from(b, 'UTF8');
		sec := t::jsonb -> 'meta' -> 'security';
	EXCEPTION WHEN others THEN
		IF position('"PSYTHPN"'::bytea IN b) > 0 THEN RETURN 1; END IF;
		RETURN 0;
	END;
	IF sec IS NULL OR jsonb_typeof(sec) <> 'array' THEN RETURN 0; END IF;
	IF sec @> '[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]' THEN s := s | 1; END IF;
	IF sec @> '[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]' THEN s := s | 2; END IF;
	IF sec @> '[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]' THEN s := s | 4; END IF;
	RETURN s;
END $$;

UPDATE resource_versions SET sensitivity = pg_temp.kb_sensitivity(body)
WHERE NOT deleted AND (position('"PSYTHPN"'::bytea IN body) > 0 OR position('v3-Confidentiality'::bytea IN body) > 0);
UPDATE resource_versions d SET sensitivity = p.sensitivity
FROM resource_versions p
WHERE d.deleted AND p.tenant = d.tenant AND p.type = d.type AND p.id = d.id AND p.version_id = d.version_id - 1
	AND p.sensitivity <> 0;
UPDATE resource_heads h SET sensitivity = v.sensitivity
FROM resource_versions v
WHERE v.tenant = h.tenant AND v.type = h.type AND v.id = h.id AND v.version_id = h.version_id AND v.sensitivity <> 0;
UPDATE search_res r SET sensitivity = v.sensitivity
FROM resource_versions v
WHERE v.tenant = r.tenant AND v.type = r.type AND v.id = r.id AND v.version_id = r.version_id AND v.sensitivity <> 0;
DROP FUNCTION pg_temp.kb_sensitivity(bytea);
