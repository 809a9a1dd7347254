package syncstore

import (
	"context"

	"github.com/kapbridge/kapbridge/fhir"
)

// Enqueue is the change hook (write.Writer.Changed): it adds a
// TopicChange message for v to the outbox inside the transaction that
// wrote v, so the change and its promise to reach the EHRs commit or
// vanish together.
func Enqueue(ctx context.Context, tx fhir.Tx, v fhir.Version) error {
	return tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: v.Tenant, Topic: TopicChange, Key: v.Type + "/" + v.ID})
}
