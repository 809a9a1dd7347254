package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// TestSensitivityMigration: migration 0004 computes, for versions stored
// before it, the Sensitivity Put computes now (fhir.SensitivityOfJSON, a
// deletion keeping what it deleted), on both dialects. The test writes
// through the store, removes what 0004 added, and opens the store again.
func TestSensitivityMigration(t *testing.T) {
	versions := []struct {
		id      string
		vid     int64
		body    string
		deleted bool
		want    fhir.Sensitivity
	}{
		{"n1", 1, `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V","display":"very restricted"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]}}`, false, fhir.PsychotherapyNote | fhir.VeryRestricted},
		{"d2", 1, `{"resourceType":"DocumentReference","id":"d2","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},"description":"mentions PSYTHPN in text only"}`, false, fhir.Restricted},
		{"n3", 1, `{"resourceType":"DocumentReference","id":"n3","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]}}`, false, fhir.PsychotherapyNote},
		{"n3", 2, ``, true, fhir.PsychotherapyNote},
		{"x4", 1, `not JSON but "PSYTHPN"`, false, fhir.PsychotherapyNote},
		{"o5", 1, `{"resourceType":"DocumentReference","id":"o5"}`, false, 0},
	}
	type dialect struct {
		name string
		open func(t *testing.T) (dsn string, reset func(t *testing.T))
	}
	resetSQL := []string{
		`UPDATE resource_versions SET sensitivity = 0`,
		`DELETE FROM schema_migrations WHERE version = 4`,
		`ALTER TABLE resource_versions DROP COLUMN sensitivity`,
		`ALTER TABLE resource_heads DROP COLUMN sensitivity`,
		`ALTER TABLE search_res DROP COLUMN sensitivity`,
	}
	dialects := []dialect{{"sqlite", func(t *testing.T) (string, func(t *testing.T)) {
		path := filepath.Join(t.TempDir(), "fhir.db")
		return path, func(t *testing.T) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range resetSQL {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
	}}}
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		dialects = append(dialects, dialect{"postgres", func(t *testing.T) (string, func(t *testing.T)) {
			schemaDSN := sqltest.FreshSchema(t, dsn)
			return schemaDSN, func(t *testing.T) {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, schemaDSN)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				for _, q := range resetSQL {
					if _, err := conn.Exec(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
		}})
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			dsn, reset := d.open(t)
			st, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range versions {
				ver := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "DocumentReference", ID: v.id}, VersionID: v.vid, Deleted: v.deleted}
				if !v.deleted {
					ver.JSON = []byte(v.body)
				}
				if err := st.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, ver, fhir.Index{}) }); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string, st fhir.Store) {
				for _, v := range versions {
					got, err := st.VRead(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "DocumentReference", ID: v.id}, v.vid)
					if err != nil {
						t.Fatal(err)
					}
					if got.Sensitivity != v.want {
						t.Errorf("%s: %s v%d: Sensitivity %b, want %b", when, v.id, v.vid, got.Sensitivity, v.want)
					}
				}
				res, err := st.(interface {
					Search(context.Context, string, *search.Query, *search.Cursor) (search.Result, error)
				}).Search(ctx, fhir.DefaultTenant, &search.Query{Type: "DocumentReference", Hide: fhir.PsychotherapyNote}, nil)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, m := range res.Matches {
					ids = append(ids, m.ID)
				}
				if len(ids) != 2 || ids[0] != "d2" || ids[1] != "o5" {
					t.Errorf("%s: search hiding notes: %v, want [d2 o5]", when, ids)
				}
			}
			check("as written", st)
			st.Close()
			reset(t)
			st, err = Open(ctx, dsn)
			if err != nil {
				t.Fatalf("reopen and migrate: %v", err)
			}
			defer st.Close()
			check("after migration 0004", st)
		})
	}
}
