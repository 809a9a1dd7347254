package records

import (
	"context"
	"errors"
	"fmt"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// The store as the Applier sees it: asked once whether it keeps practice
// records, then read and written through recordstore's contract.

// ErrNoRecordStore: the store cannot keep practice records. A store keeps
// them when it implements recordstore.Store; its transactions then
// implement recordstore.Tx.
var ErrNoRecordStore = errors.New("records: the store does not keep practice records (it does not implement recordstore.Store)")

// rowStore is the one place a store is asked whether it keeps practice
// records.
func rowStore(s fhir.Store) (recordstore.Store, error) {
	if s == nil {
		return nil, errors.New("records: no store")
	}
	rs, ok := s.(recordstore.Store)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNoRecordStore, s)
	}
	return rs, nil
}

// Check reports whether the Store keeps practice records (else an error
// wrapping ErrNoRecordStore). It checks once; every method calls it, and
// wiring calls it to fail at start rather than at the first record.
func (a *Applier) Check() error {
	a.once.Do(func() { a.rows, a.rowsErr = rowStore(a.Store) })
	return a.rowsErr
}

func (a *Applier) tenant() string {
	if a.Tenant == "" {
		return fhir.DefaultTenant
	}
	return a.Tenant
}

// update runs fn in one store transaction, with the transaction's record
// side: the one place a transaction is asked for it (a store that
// implements recordstore.Store promises its transactions implement Tx).
func (a *Applier) update(ctx context.Context, fn func(tx fhir.Tx, rtx recordstore.Tx) error) error {
	if err := a.Check(); err != nil {
		return err
	}
	return a.Store.Update(ctx, func(tx fhir.Tx) error {
		rtx, ok := tx.(recordstore.Tx)
		if !ok {
			return fmt.Errorf("records: the store keeps practice records, but its transaction (%T) does not implement recordstore.Tx", tx)
		}
		return fn(tx, rtx)
	})
}

// Record returns the stored row of one record, as the store holds it.
func (a *Applier) Record(ctx context.Context, kind mappings.Kind, id string) (recordstore.Row, bool, error) {
	if err := a.Check(); err != nil {
		return recordstore.Row{}, false, err
	}
	return a.rows.GetRecord(ctx, a.tenant(), string(kind), id)
}

// Answer returns the answer stored for an ingestion request's
// Idempotency-Key (none older than recordstore.IdempotencyTTL).
func (a *Applier) Answer(ctx context.Context, key string) (recordstore.IdempotencyRow, bool, error) {
	if err := a.Check(); err != nil {
		return recordstore.IdempotencyRow{}, false, err
	}
	return a.rows.GetIdempotency(ctx, a.tenant(), key)
}

// KeepAnswer stores the answer to an ingestion request under its
// Idempotency-Key (r.Tenant is the Applier's), in a transaction of its
// own: the records of a request are applied one transaction each.
func (a *Applier) KeepAnswer(ctx context.Context, r recordstore.IdempotencyRow) error {
	r.Tenant = a.tenant()
	return a.update(ctx, func(_ fhir.Tx, rtx recordstore.Tx) error { return rtx.PutIdempotency(ctx, r) })
}
