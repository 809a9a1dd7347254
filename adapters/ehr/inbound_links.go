package ehr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
)

// SyncLinks is RemoteLinks over the outbound side's link table: a remote
// resource the gateway wrote is its source resource there, at the
// version the EHR answered.
type SyncLinks struct{ Store syncstore.Store }

// LinkOf implements RemoteLinks.
func (l SyncLinks) LinkOf(ctx context.Context, connection, remoteType, remoteID string) (string, string, bool, error) {
	lk, err := l.Store.LinkByRemote(ctx, connection, remoteType, remoteID)
	if errors.Is(err, syncstore.ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	return lk.SourceType + "/" + lk.SourceID, lk.RemoteVersion, true, nil
}

// PollLinked polls every patient of the connection that is linked
// (syncstore's patient links: the local Patient and the EHR's), finding
// each Patient's practice client by its practice identifier in store.
// A patient that cannot be polled is reported, and the others go on.
func (p *Poller) PollLinked(ctx context.Context, links syncstore.Store, store fhir.Store) ([]*InboundReport, error) {
	pls, err := links.PatientLinks(ctx, p.Connection, syncstore.PatientLinked)
	if err != nil {
		return nil, err
	}
	var reps []*InboundReport
	var errs []error
	for _, pl := range pls {
		if pl.Tenant != p.tenant() {
			continue
		}
		client, err := clientOfPatient(ctx, store, pl.Tenant, pl.PatientID)
		if err != nil {
			errs = append(errs, fmt.Errorf("Patient/%s: %w", pl.PatientID, err))
			continue
		}
		rep, err := p.PollPatient(ctx, LinkedPatient{Client: client, Remote: pl.RemoteID})
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", client, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return reps, errors.Join(errs...)
}

// clientOfPatient reads the practice client id from the Patient's
// practice identifier.
func clientOfPatient(ctx context.Context, store fhir.Store, tenant, id string) (string, error) {
	v, err := store.Read(ctx, fhir.Key{Tenant: tenant, Type: "Patient", ID: id})
	if err != nil {
		return "", err
	}
	res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		return "", err
	}
	ids := res.Get("identifier")
	if ids != nil {
		for _, x := range ids.Array {
			sys := x.GetString("system")
			if strings.HasPrefix(sys, mappings.NSPracticeRecordIDs+"/") && strings.HasSuffix(sys, "/"+string(mappings.KindClient)) {
				return x.GetString("value"), nil
			}
		}
	}
	return "", errors.New("the Patient carries no practice client identifier")
}
