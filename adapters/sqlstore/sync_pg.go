package sqlstore

import (
	"context"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
)

// The PostgreSQL store's syncstore.Store: sync.go's shared queries over its
// connections.

func (s *pgStore) syncOps() syncOps { return syncOps{read: s.syncRead, write: s.syncWrite} }

func (s *pgStore) AddConnection(ctx context.Context, c syncstore.Connection) error {
	return s.syncOps().AddConnection(ctx, c)
}

func (s *pgStore) Connection(ctx context.Context, name string) (syncstore.Connection, error) {
	return s.syncOps().Connection(ctx, name)
}

func (s *pgStore) Connections(ctx context.Context) ([]syncstore.Connection, error) {
	return s.syncOps().Connections(ctx)
}

func (s *pgStore) RemoveConnection(ctx context.Context, name string) error {
	return s.syncOps().RemoveConnection(ctx, name)
}

func (s *pgStore) Fanout(ctx context.Context, tenant string, limit int, now time.Time) (int, error) {
	return s.syncOps().Fanout(ctx, tenant, limit, now)
}

func (s *pgStore) Lease(ctx context.Context, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]syncstore.Delivery, error) {
	return s.syncOps().Lease(ctx, connection, owner, limit, now, ttl)
}

func (s *pgStore) Finish(ctx context.Context, d syncstore.Delivery, owner string, r syncstore.Result, now time.Time) error {
	return s.syncOps().Finish(ctx, d, owner, r, now)
}

func (s *pgStore) FinishAll(ctx context.Context, owner string, fs []syncstore.Finishing, now time.Time) ([]error, error) {
	return s.syncOps().FinishAll(ctx, owner, fs, now)
}

func (s *pgStore) Release(ctx context.Context, owner string) error {
	return s.syncOps().Release(ctx, owner)
}

func (s *pgStore) Replay(ctx context.Context, connection string, now time.Time) (int, error) {
	return s.syncOps().Replay(ctx, connection, now)
}

func (s *pgStore) Wake(ctx context.Context, connection string, now time.Time) error {
	return s.syncOps().Wake(ctx, connection, now)
}

func (s *pgStore) Deliveries(ctx context.Context, connection, state string, limit int) ([]syncstore.Delivery, error) {
	return s.syncOps().Deliveries(ctx, connection, state, limit)
}

func (s *pgStore) Counts(ctx context.Context, connection string) (map[string]int, error) {
	return s.syncOps().Counts(ctx, connection)
}

func (s *pgStore) Link(ctx context.Context, connection, tenant, srcType, srcID, part string) (syncstore.Link, error) {
	return s.syncOps().Link(ctx, connection, tenant, srcType, srcID, part)
}

func (s *pgStore) PutLink(ctx context.Context, l syncstore.Link) error {
	return s.syncOps().PutLink(ctx, l)
}

func (s *pgStore) LinkByRemote(ctx context.Context, connection, remoteType, remoteID string) (syncstore.Link, error) {
	return s.syncOps().LinkByRemote(ctx, connection, remoteType, remoteID)
}

func (s *pgStore) Links(ctx context.Context, connection string) ([]syncstore.Link, error) {
	return s.syncOps().Links(ctx, connection)
}

func (s *pgStore) PatientLink(ctx context.Context, connection, tenant, patientID string) (syncstore.PatientLink, error) {
	return s.syncOps().PatientLink(ctx, connection, tenant, patientID)
}

func (s *pgStore) PutPatientLink(ctx context.Context, l syncstore.PatientLink) error {
	return s.syncOps().PutPatientLink(ctx, l)
}

func (s *pgStore) PatientLinks(ctx context.Context, connection, state string) ([]syncstore.PatientLink, error) {
	return s.syncOps().PatientLinks(ctx, connection, state)
}

func (s *pgStore) Delivery(ctx context.Context, connection, tenant, typ, id string) (syncstore.Delivery, error) {
	return s.syncOps().Delivery(ctx, connection, tenant, typ, id)
}

// LinksOf implements syncstore.LinkBatcher.
func (s *pgStore) LinksOf(ctx context.Context, connection string, sources []syncstore.Source) ([]syncstore.Link, error) {
	return s.syncOps().LinksOf(ctx, connection, sources)
}
