package write_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// The change hook runs in the writing transaction: what it enqueues
// commits with the version, and its error undoes the version.
func TestChangedRunsInTheTransaction(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	var seen []string
	w := write.Writer{Changed: func(ctx context.Context, tx fhir.Tx, v fhir.Version) error {
		seen = append(seen, v.Type+"/"+v.ID)
		return tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: v.Tenant, Topic: "t", Key: v.Type + "/" + v.ID})
	}}
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Basic", ID: "b1"}
	var v1 fhir.Version
	err := st.Update(ctx, func(tx fhir.Tx) (err error) {
		v1, err = w.Put(ctx, tx, k, fhir.Version{Key: k}, fhir.Object())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx fhir.Tx) error { _, err := w.Delete(ctx, tx, k, v1, time.Time{}); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	failing := write.Writer{Changed: func(context.Context, fhir.Tx, fhir.Version) error { return boom }}
	k2 := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Basic", ID: "b2"}
	err = st.Update(ctx, func(tx fhir.Tx) error {
		_, err := failing.Put(ctx, tx, k2, fhir.Version{Key: k2}, fhir.Object())
		return err
	})
	if !errors.Is(err, boom) {
		t.Fatalf("a failing hook: Update = %v, want its error", err)
	}
	if _, err := st.Read(ctx, k2); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("the version whose hook failed was kept: %v", err)
	}
	ms, err := st.Outbox(ctx, fhir.DefaultTenant, 0, 0)
	if err != nil || len(ms) != 2 || len(seen) != 2 {
		t.Fatalf("outbox = %+v, %v; hook saw %v; want the put and the delete", ms, err, seen)
	}
	if d, _ := st.Read(ctx, k); !d.Deleted || d.VersionID != 2 {
		t.Errorf("after Delete: %+v", d)
	}
}
