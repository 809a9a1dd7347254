package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kapbridge/kapbridge/fhir"
)

// Reindexing: the search-index rows and identifiers of a version are
// written with it (fhir/write computes them), so data written before a
// change to what is indexed (Reference.identifier for :identifier, a new
// search parameter, a fix in extraction) is found only by what was indexed
// then. kapbridge reindex rebuilds them for the current version of every
// live resource from its stored JSON, a page of resources per transaction,
// in (tenant, type, id) order, saving its cursor (table
// reindex_progress, migration 0014) with each page: a run that stops
// resumes after the last committed page. No version is written and
// nothing is enqueued for sync: the resources do not change, only how they
// are found. The rows of a resource are replaced within one transaction,
// so a search never sees it half indexed.

// Reindexer rebuilds search-index rows. The stores Open returns implement
// it.
type Reindexer interface {
	// ReindexPage rebuilds the index of up to limit live resources after
	// the saved cursor (from the start when restart is set, when no run
	// was saved, or when the saved run was done), with index computing
	// each current version's Index, and saves the cursor in the same
	// transaction. Done in the answer says no live resource is left.
	ReindexPage(ctx context.Context, restart bool, limit int, index func(fhir.Version) (fhir.Index, error)) (ReindexProgress, error)
}

// ReindexProgress is where a reindex run stands.
type ReindexProgress struct {
	After fhir.Key // the last resource reindexed ("" fields: none yet)
	Count int64    // resources reindexed in this run
	Page  int      // resources reindexed by this call
	Done  bool     // no live resource after After
}

const reindexName = "search"

// reindexTarget is a live resource's current version and its vkey.
type reindexTarget struct {
	v    fhir.Version
	vkey int64
}

var errNoSearchRow = errors.New("sqlstore: reindex: a live resource has no current search_res row")

// reindexStart reads the saved progress: where this page starts.
func reindexStart(p ReindexProgress, found bool, restart bool) ReindexProgress {
	if restart || !found || p.Done {
		return ReindexProgress{}
	}
	p.Page = 0
	return p
}

func (s *sqliteStore) ReindexPage(ctx context.Context, restart bool, limit int, index func(fhir.Version) (fhir.Index, error)) (ReindexProgress, error) {
	if limit < 1 {
		limit = 1
	}
	var out ReindexProgress
	err := s.Update(ctx, func(ftx fhir.Tx) error {
		tx, ok := ftx.(*sqliteTx)
		if !ok {
			return fmt.Errorf("sqlstore: reindex: not a SQLite transaction")
		}
		if err := tx.check(ctx); err != nil {
			return err
		}
		bg, c := context.Background(), tx.s.wconn
		var p ReindexProgress
		found := true
		err := c.QueryRowContext(bg, `SELECT tenant, type, id, count, done FROM reindex_progress WHERE name = ?`, reindexName).
			Scan(&p.After.Tenant, &p.After.Type, &p.After.ID, &p.Count, &p.Done)
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlstore: reindex: read progress: %w", err)
			}
			found = false
		}
		p = reindexStart(p, found, restart)
		rows, err := c.QueryContext(bg, `SELECT h.tenant, h.type, h.id, h.version_id, v.body, r.vkey
			FROM resource_heads h
			JOIN resource_versions v ON v.tenant = h.tenant AND v.type = h.type AND v.id = h.id AND v.version_id = h.version_id
			LEFT JOIN search_res r ON r.tenant = h.tenant AND r.type = h.type AND r.id = h.id AND r.version_id = h.version_id AND r.to_seq = ?
			WHERE h.deleted = 0 AND (h.tenant, h.type, h.id) > (?, ?, ?)
			ORDER BY h.tenant, h.type, h.id LIMIT ?`, maxSeq, p.After.Tenant, p.After.Type, p.After.ID, limit)
		if err != nil {
			return fmt.Errorf("sqlstore: reindex: %w", err)
		}
		targets, err := scanReindexTargets(rows.Next, rows.Scan)
		rows.Close()
		if err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlstore: reindex: %w", err)
		}
		w := &tx.s.w
		for _, t := range targets {
			k := t.v.Key
			idx, err := index(t.v)
			if err != nil {
				return fmt.Errorf("sqlstore: reindex %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
			}
			for _, it := range indexTables {
				if _, err := c.ExecContext(bg, "DELETE FROM "+it.name+" WHERE vkey = ?", t.vkey); err != nil {
					return fmt.Errorf("sqlstore: reindex %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
				}
			}
			if _, err := w.deleteIdents.ExecContext(bg, k.Tenant, k.Type, k.ID); err != nil {
				return fmt.Errorf("sqlstore: reindex %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
			}
			for _, id := range idx.Identifiers {
				if _, err := w.insertIdent.ExecContext(bg, k.Tenant, k.Type, k.ID, id.System, id.Value); err != nil {
					return fmt.Errorf("sqlstore: reindex %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
				}
			}
			// Buffered like a Put's rows, inserted before the batch commits
			// (indexbuf_sqlite.go), after the deletes above.
			eachIndexRow(idx.Entries, []any{k.Tenant, k.Type, t.vkey}, func(tb int, row []any) {
				tx.s.idx.rows[tb] = append(tx.s.idx.rows[tb], row)
			})
			p.After = k
			p.Count++
			p.Page++
		}
		p.Done = len(targets) < limit
		if _, err := c.ExecContext(bg, `INSERT INTO reindex_progress (name, tenant, type, id, count, done) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET tenant = excluded.tenant, type = excluded.type, id = excluded.id, count = excluded.count, done = excluded.done`,
			reindexName, p.After.Tenant, p.After.Type, p.After.ID, p.Count, p.Done); err != nil {
			return fmt.Errorf("sqlstore: reindex: save progress: %w", err)
		}
		out = p
		return nil
	})
	return out, err
}

func (s *pgStore) ReindexPage(ctx context.Context, restart bool, limit int, index func(fhir.Version) (fhir.Index, error)) (ReindexProgress, error) {
	if limit < 1 {
		limit = 1
	}
	var out ReindexProgress
	err := s.Update(ctx, func(ftx fhir.Tx) error {
		tx, ok := ftx.(*pgTx)
		if !ok {
			return fmt.Errorf("sqlstore: reindex: not a PostgreSQL transaction")
		}
		if err := tx.check(); err != nil {
			return err
		}
		var p ReindexProgress
		found := true
		// FOR UPDATE: two runs at once take turns page by page.
		err := tx.tx.QueryRow(ctx, `SELECT tenant, type, id, count, done FROM reindex_progress WHERE name = $1 FOR UPDATE`, reindexName).
			Scan(&p.After.Tenant, &p.After.Type, &p.After.ID, &p.Count, &p.Done)
		if err != nil {
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("sqlstore: reindex: read progress: %w", err)
			}
			found = false
		}
		p = reindexStart(p, found, restart)
		rows, err := tx.tx.Query(ctx, `SELECT h.tenant, h.type, h.id, h.version_id, v.body, r.vkey
			FROM resource_heads h
			JOIN resource_versions v ON v.tenant = h.tenant AND v.type = h.type AND v.id = h.id AND v.version_id = h.version_id
			LEFT JOIN search_res r ON r.tenant = h.tenant AND r.type = h.type AND r.id = h.id AND r.version_id = h.version_id AND r.to_seq IS NULL
			WHERE NOT h.deleted AND (h.tenant, h.type, h.id) > ($1, $2, $3)
			ORDER BY h.tenant, h.type, h.id LIMIT $4
			FOR UPDATE OF h`, p.After.Tenant, p.After.Type, p.After.ID, limit)
		if err != nil {
			return fmt.Errorf("sqlstore: reindex: %w", err)
		}
		targets, err := scanReindexTargets(rows.Next, rows.Scan)
		rows.Close()
		if err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlstore: reindex: %w", err)
		}
		b := &pgx.Batch{}
		for _, t := range targets {
			k := t.v.Key
			idx, err := index(t.v)
			if err != nil {
				return fmt.Errorf("sqlstore: reindex %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
			}
			for _, it := range indexTables {
				b.Queue("DELETE FROM "+it.name+" WHERE vkey = $1", t.vkey)
			}
			b.Queue(`DELETE FROM resource_identifiers WHERE tenant = $1 AND type = $2 AND id = $3`, k.Tenant, k.Type, k.ID)
			for _, id := range idx.Identifiers {
				b.Queue(`INSERT INTO resource_identifiers (tenant, type, id, system, value) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
					k.Tenant, k.Type, k.ID, id.System, id.Value)
			}
			queueIndexRows(b, k, "$3::bigint", []any{t.vkey}, idx.Entries)
			p.After = k
			p.Count++
			p.Page++
		}
		p.Done = len(targets) < limit
		b.Queue(`INSERT INTO reindex_progress (name, tenant, type, id, count, done) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (name) DO UPDATE SET tenant = excluded.tenant, type = excluded.type, id = excluded.id, count = excluded.count, done = excluded.done`,
			reindexName, p.After.Tenant, p.After.Type, p.After.ID, p.Count, p.Done)
		if err := tx.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("sqlstore: reindex: %w", err)
		}
		out = p
		return nil
	})
	return out, err
}

// scanReindexTargets reads a page of heads (tenant, type, id, version,
// body, search row key) from either driver's rows. A head without a live
// search row cannot be reindexed in place: errNoSearchRow.
func scanReindexTargets(next func() bool, scan func(...any) error) ([]reindexTarget, error) {
	var targets []reindexTarget
	for next() {
		var t reindexTarget
		var vkey *int64
		if err := scan(&t.v.Tenant, &t.v.Type, &t.v.ID, &t.v.VersionID, &t.v.JSON, &vkey); err != nil {
			return nil, fmt.Errorf("sqlstore: reindex: %w", err)
		}
		if vkey == nil {
			return nil, fmt.Errorf("%w: %s/%s/%s", errNoSearchRow, t.v.Tenant, t.v.Type, t.v.ID)
		}
		t.vkey = *vkey
		targets = append(targets, t)
	}
	return targets, nil
}
