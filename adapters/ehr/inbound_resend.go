package ehr

import (
	"context"
	"errors"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// A conflict the practice wins (sync.md, "Ownership") is resolved by
// writing the practice's version over the EHR's edit: the link of what
// the gateway wrote there forgets its content hash (and the body a patch
// would start from), so the next delivery does not skip it as unchanged,
// and a change of the source resource is enqueued, so that delivery
// comes. Other connections skip it by their own hashes.

// Resender is a RemoteLinks that can make the gateway write its version
// of a remote resource again; SyncLinks is one.
type Resender interface {
	// Resend marks the remote resource's link to be written again and
	// returns its local source ("Type/id"); ok is false when the gateway
	// never wrote it (nothing of its own is there).
	Resend(ctx context.Context, connection, remoteType, remoteID string) (local string, ok bool, err error)
}

// Resend implements Resender.
func (l SyncLinks) Resend(ctx context.Context, connection, remoteType, remoteID string) (string, bool, error) {
	lk, err := l.Store.LinkByRemote(ctx, connection, remoteType, remoteID)
	if errors.Is(err, syncstore.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	lk.Hash, lk.Body = "", nil
	if err := l.Store.PutLink(ctx, lk); err != nil {
		return "", false, err
	}
	return lk.SourceType + "/" + lk.SourceID, true, nil
}

// resendPractice makes the next outbound run write the practice's version
// over the EHR's edit of r; it reports whether there is one to write.
func (s *RecordSink) resendPractice(ctx context.Context, r InboundResource) (bool, error) {
	rs, ok := s.Links.(Resender)
	if !ok {
		return false, nil
	}
	local, ok, err := rs.Resend(ctx, s.Connection, r.Type, r.ID)
	if err != nil || !ok {
		return false, err
	}
	typ, id, _ := syncstore.SplitRef(local)
	err = s.Applier.Store.Update(ctx, func(tx fhir.Tx) error {
		return syncstore.Enqueue(ctx, tx, fhir.Version{Key: fhir.Key{Tenant: s.tenant(), Type: typ, ID: id}})
	})
	return err == nil, err
}

// practiceResolution says what the gateway does about a conflict the
// practice wins: what stands, and whether its version is written back.
func practiceResolution(what string, resent bool) string {
	if resent {
		return what + "; the EHR's edit is not taken, and the next outbound sync writes the practice's version over it"
	}
	return what + "; the EHR's edit is not taken (the gateway wrote nothing there to write again)"
}
