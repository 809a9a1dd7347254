package syncstore

import (
	"bytes"
	"context"

	"github.com/kapbridge/kapbridge/fhir"
)

// Enqueue is the change hook (write.Writer.Changed): it adds a
// TopicChange message for v to the outbox inside the transaction that
// wrote v, so the change and its promise to reach the EHRs commit or
// vanish together. A change made while taking in a resource from an EHR
// (WithOrigin) is marked with that connection, and Fanout sends it to
// every connection but that one: the EHR already holds what it wrote,
// and sending it back would make a second copy there.
func Enqueue(ctx context.Context, tx fhir.Tx, v fhir.Version) error {
	m := fhir.OutboxMessage{Tenant: v.Tenant, Topic: TopicChange, Key: v.Type + "/" + v.ID}
	if o, ok := ctx.Value(originKey{}).(origin); ok && o.typ == v.Type {
		m.Payload = append([]byte(originPrefix), o.connection...)
	}
	return tx.Enqueue(ctx, m)
}

type originKey struct{}

type origin struct{ connection, typ string }

const originPrefix = "origin:"

// WithOrigin returns ctx for writes that take in a resource of type typ
// from the EHR of connection: the versions of that type they write are
// not sent back to that connection. (Other resources the same change
// makes, a Flag a vital sign raises say, still go to every connection.)
func WithOrigin(ctx context.Context, connection, typ string) context.Context {
	return context.WithValue(ctx, originKey{}, origin{connection: connection, typ: typ})
}

// OriginOf returns the connection an outbox message's change came from,
// "" for a change made in the gateway.
func OriginOf(payload []byte) string {
	if rest, ok := bytes.CutPrefix(payload, []byte(originPrefix)); ok {
		return string(rest)
	}
	return ""
}
