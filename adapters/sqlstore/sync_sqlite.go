package sqlstore

import (
	"context"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
)

// The SQLite store's syncstore.Store: sync.go's shared queries over its
// connections.

func (s *sqliteStore) syncOps() syncOps { return syncOps{read: s.syncRead, write: s.syncWrite} }

func (s *sqliteStore) AddConnection(ctx context.Context, c syncstore.Connection) error {
	return s.syncOps().AddConnection(ctx, c)
}

func (s *sqliteStore) Connection(ctx context.Context, name string) (syncstore.Connection, error) {
	return s.syncOps().Connection(ctx, name)
}

func (s *sqliteStore) Connections(ctx context.Context) ([]syncstore.Connection, error) {
	return s.syncOps().Connections(ctx)
}

func (s *sqliteStore) RemoveConnection(ctx context.Context, name string) error {
	return s.syncOps().RemoveConnection(ctx, name)
}

func (s *sqliteStore) Fanout(ctx context.Context, tenant string, limit int, now time.Time) (int, error) {
	return s.syncOps().Fanout(ctx, tenant, limit, now)
}

func (s *sqliteStore) Lease(ctx context.Context, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]syncstore.Delivery, error) {
	return s.syncOps().Lease(ctx, connection, owner, limit, now, ttl)
}

func (s *sqliteStore) Finish(ctx context.Context, d syncstore.Delivery, owner string, r syncstore.Result, now time.Time) error {
	return s.syncOps().Finish(ctx, d, owner, r, now)
}

func (s *sqliteStore) FinishAll(ctx context.Context, owner string, fs []syncstore.Finishing, now time.Time) ([]error, error) {
	return s.syncOps().FinishAll(ctx, owner, fs, now)
}

func (s *sqliteStore) Release(ctx context.Context, owner string) error {
	return s.syncOps().Release(ctx, owner)
}

func (s *sqliteStore) Replay(ctx context.Context, connection string, now time.Time) (int, error) {
	return s.syncOps().Replay(ctx, connection, now)
}

func (s *sqliteStore) Wake(ctx context.Context, connection string, now time.Time) error {
	return s.syncOps().Wake(ctx, connection, now)
}

func (s *sqliteStore) Deliveries(ctx context.Context, connection, state string, limit int) ([]syncstore.Delivery, error) {
	return s.syncOps().Deliveries(ctx, connection, state, limit)
}

func (s *sqliteStore) Counts(ctx context.Context, connection string) (map[string]int, error) {
	return s.syncOps().Counts(ctx, connection)
}

func (s *sqliteStore) Link(ctx context.Context, connection, tenant, srcType, srcID, part string) (syncstore.Link, error) {
	return s.syncOps().Link(ctx, connection, tenant, srcType, srcID, part)
}

func (s *sqliteStore) PutLink(ctx context.Context, l syncstore.Link) error {
	return s.syncOps().PutLink(ctx, l)
}

func (s *sqliteStore) LinkByRemote(ctx context.Context, connection, remoteType, remoteID string) (syncstore.Link, error) {
	return s.syncOps().LinkByRemote(ctx, connection, remoteType, remoteID)
}

func (s *sqliteStore) Links(ctx context.Context, connection string) ([]syncstore.Link, error) {
	return s.syncOps().Links(ctx, connection)
}

func (s *sqliteStore) PatientLink(ctx context.Context, connection, tenant, patientID string) (syncstore.PatientLink, error) {
	return s.syncOps().PatientLink(ctx, connection, tenant, patientID)
}

func (s *sqliteStore) PutPatientLink(ctx context.Context, l syncstore.PatientLink) error {
	return s.syncOps().PutPatientLink(ctx, l)
}

func (s *sqliteStore) PatientLinks(ctx context.Context, connection, state string) ([]syncstore.PatientLink, error) {
	return s.syncOps().PatientLinks(ctx, connection, state)
}

func (s *sqliteStore) Delivery(ctx context.Context, connection, tenant, typ, id string) (syncstore.Delivery, error) {
	return s.syncOps().Delivery(ctx, connection, tenant, typ, id)
}

// LinksOf implements syncstore.LinkBatcher.
func (s *sqliteStore) LinksOf(ctx context.Context, connection string, sources []syncstore.Source) ([]syncstore.Link, error) {
	return s.syncOps().LinksOf(ctx, connection, sources)
}
