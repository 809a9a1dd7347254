package sqlstore

import (
	"context"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
)

// Backfill, Prune and Discard of syncstore.Store (migration 0011 indexes
// them), written once for both dialects like sync.go.

func (o syncOps) Backfill(ctx context.Context, connection, after string, limit int, now time.Time) (string, int, error) {
	if limit <= 0 {
		limit = 1000
	}
	afterType, afterID, _ := syncstore.SplitRef(after)
	var next string
	added := 0
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		next, added = "", 0
		rows, err := q.query(ctx, `SELECT tenant FROM ehr_connections WHERE name = ?`, connection)
		tenant, err := one(rows, err, func(r syncRows) (string, error) { var s string; return s, r.Scan(&s) })
		if err != nil {
			return err
		}
		rows, err = q.query(ctx, `SELECT type, id FROM resource_heads WHERE tenant = ? AND deleted = `+falseLit(q)+`
			AND (type > ? OR (type = ? AND id > ?)) ORDER BY type, id LIMIT ?`, tenant, afterType, afterType, afterID, limit)
		heads, err := collect(rows, err, func(r syncRows) ([2]string, error) { var h [2]string; return h, r.Scan(&h[0], &h[1]) })
		if err != nil {
			return err
		}
		for _, h := range heads {
			n, err := q.exec(ctx, `INSERT INTO ehr_deliveries (connection, tenant, type, resource_id, gen, state, attempts, next_at, updated)
				VALUES (?, ?, ?, ?, 1, 'pending', 0, ?, ?) ON CONFLICT (connection, tenant, type, resource_id) DO NOTHING`,
				connection, tenant, h[0], h[1], q.at(now), q.at(now))
			if err != nil {
				return err
			}
			added += int(n)
		}
		if len(heads) == limit {
			next = heads[len(heads)-1][0] + "/" + heads[len(heads)-1][1]
		}
		return nil
	})
	return next, added, syncErr("backfill", err)
}

// refParts splits an outbox key "Type/id" in SQL.
func refParts(q syncQ, col string) (typ, id string) {
	if _, ok := q.(pgQ); ok {
		return "split_part(" + col + ", '/', 1)", "substr(" + col + ", strpos(" + col + ", '/') + 1)"
	}
	return "substr(" + col + ", 1, instr(" + col + ", '/') - 1)", "substr(" + col + ", instr(" + col + ", '/') + 1)"
}

func (o syncOps) Prune(ctx context.Context, before time.Time) (int, int, error) {
	var msgs, dels int64
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		typ, id := refParts(q, "outbox.key")
		var err error
		msgs, err = q.exec(ctx, `DELETE FROM outbox WHERE topic = '`+syncstore.TopicChange+`' AND ehr_fanned = `+trueLit(q)+` AND created < ?
			AND NOT EXISTS (SELECT 1 FROM ehr_deliveries d WHERE d.tenant = outbox.tenant AND d.type = `+typ+` AND d.resource_id = `+id+`
				AND d.state <> 'done')`, q.at(before))
		if err != nil {
			return err
		}
		dels, err = q.exec(ctx, `DELETE FROM ehr_deliveries WHERE state = 'done' AND last_error = '' AND lease_owner = '' AND updated < ?`, q.at(before))
		return err
	})
	return int(msgs), int(dels), syncErr("prune", err)
}

func (o syncOps) Discard(ctx context.Context, connection, ref string) (int, error) {
	typ, id, _ := syncstore.SplitRef(ref)
	var n int64
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		var err error
		n, err = q.exec(ctx, `DELETE FROM ehr_deliveries WHERE connection = ? AND state = 'dead' AND (CAST(? AS TEXT) = '' OR (type = ? AND resource_id = ?))`,
			connection, ref, typ, id)
		return err
	})
	return int(n), syncErr("discard", err)
}

func (s *sqliteStore) Backfill(ctx context.Context, connection, after string, limit int, now time.Time) (string, int, error) {
	return s.syncOps().Backfill(ctx, connection, after, limit, now)
}

func (s *sqliteStore) Prune(ctx context.Context, before time.Time) (int, int, error) {
	return s.syncOps().Prune(ctx, before)
}

func (s *sqliteStore) Discard(ctx context.Context, connection, ref string) (int, error) {
	return s.syncOps().Discard(ctx, connection, ref)
}

func (s *pgStore) Backfill(ctx context.Context, connection, after string, limit int, now time.Time) (string, int, error) {
	return s.syncOps().Backfill(ctx, connection, after, limit, now)
}

func (s *pgStore) Prune(ctx context.Context, before time.Time) (int, int, error) {
	return s.syncOps().Prune(ctx, before)
}

func (s *pgStore) Discard(ctx context.Context, connection, ref string) (int, error) {
	return s.syncOps().Discard(ctx, connection, ref)
}
