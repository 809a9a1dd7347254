package ehr

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
)

// Deletions: a resource deleted in the gateway is deleted on the EHR,
// each part it became there (the link table knows them), where the EHR's
// statement declares delete for that type. Where it does not, nothing is
// sent, and the row ends done with a note that starts with
// NoteDeletionNotSent, so `kapbridge sync status` lists it with the
// reason: never dropped without a word. A part's link, once deleted,
// keeps its remote id with the hash deletedHash, so a repeat sends
// nothing and a resource written again later is created anew.

// NoteDeletionNotSent begins the note of a deletion the EHR was not sent.
const NoteDeletionNotSent = "deletion not sent"

const deletedHash = "deleted"

// linkParts are the parts a source resource may become on an EHR.
var linkParts = []Builder{BuildAsMapped, BuildCarePlanDocument, BuildQuestionnaireResponseDocument, BuildDoseObservation, BuildFlagCommunication}

// deliverDeletion propagates the deletion of d's resource.
func (o *Outbound) deliverDeletion(ctx context.Context, d syncstore.Delivery) syncstore.Result {
	var links []syncstore.Link
	for _, part := range linkParts {
		l, err := o.Sync.Link(ctx, o.Conn.Name, d.Tenant, d.Type, d.ResourceID, string(part))
		if errors.Is(err, syncstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return o.fail(d, err)
		}
		if l.Hash != deletedHash {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return done("") // never written here, or deleted there already
	}
	var notSent []string
	for _, l := range links {
		remote := l.RemoteType + "/" + l.RemoteID
		if !o.Caps.Allows(l.RemoteType, InteractionDelete) {
			notSent = append(notSent, remote+" stays on the EHR: its CapabilityStatement declares no delete of "+l.RemoteType)
			continue
		}
		_, err := o.Client.Do(ctx, &Request{Method: http.MethodDelete, URL: l.RemoteType + "/" + url.PathEscape(l.RemoteID), LogID: d.Ref()})
		var ee *Error
		if err != nil && !(errors.As(err, &ee) && (ee.Status == http.StatusNotFound || ee.Status == http.StatusGone)) {
			return o.fail(d, err)
		}
		l.Hash, l.Body, l.Updated = deletedHash, nil, o.Now()
		if err := o.Sync.PutLink(ctx, l); err != nil {
			return o.fail(d, err)
		}
	}
	if len(notSent) > 0 {
		return done(NoteDeletionNotSent + ": deleted at the practice, but " + strings.Join(notSent, "; "))
	}
	return done("")
}
