package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// Psychotherapy notes (45 CFR 164.501) are stored labelled with the
// v3-ActCode sensitivity PSYTHPN. Their disclosure needs the patient's
// authorization for a named recipient. The caller's Audience says which
// it may receive (auth_consent.go): the practice's own clients all of
// them, a prescriber's client those a Consent permits to it, and every
// other caller (no authorization) the public fhir.Audience, which receives
// no note: not its content and not its existence.
//
// The rule is fhir.Audience.Withholds, asked on every path here:
//   - reads, vreads and instance histories of a withheld resource answer
//     exactly as for an id that never existed (see hidden);
//   - searches, compartments, $everything, includes, _has, chains and
//     type/system histories pass the audience to the store
//     (search.Query.Hide), which leaves withheld resources out of the
//     query itself, so no count, order or page betrays them;
//   - conditional creates and updates resolve their criteria without
//     withheld resources; only a withheld resource carrying an identifier
//     the criteria name stops the write, with hiddenTargetError;
//   - an update of a withheld resource is refused with hiddenTargetError,
//     a delete answers as for a missing id, and neither writes anything.
//
// The practice's own tools read notes from the practice record store, not
// from here.

// audienceOf returns whom the answer to c goes to: decided by the
// caller's client and the patient's Consents (auth_consent.go); without
// authorization, the public audience.
func audienceOf(c *gin.Context) fhir.Audience { return principalAudience(c) }

// hidden reports whether the resource whose newest version is head must
// be treated as nonexistent for aud: head is withheld (for a deleted
// resource head is the deletion, which keeps the sensitivity of what it
// deleted). A resource that was once ordinary and is now a note is hidden
// with all its versions.
func hidden(aud fhir.Audience, head fhir.Version) bool { return aud.Withholds(head) }

// errHiddenTarget is the cause of the answer to a write whose target is a
// resource the caller may not see: an update of it by id, or a
// conditional write whose criteria name its identifier. Carrying the
// write out would overwrite the resource or duplicate it, so nothing is
// written, and the message says no more than that the write is refused.
var errHiddenTarget = errors.New("server: the write's target is withheld from the caller")

func hiddenTargetError(typ string) error {
	return fhir.Errorf(fhir.IssueConflict, "", "this %s write cannot be carried out for this caller; nothing was written", typ).
		WithStatus(http.StatusConflict).Wrap(errHiddenTarget)
}

// visible drops from vs what aud may not see. The store already leaves
// such resources out of searches and histories (search.Query.Hide); this
// is the last line, and finding one means a store bug, which is logged
// (ids only) rather than disclosed.
func (s *Server) visible(ctx context.Context, aud fhir.Audience, vs []fhir.Version) []fhir.Version {
	out := vs[:0:0]
	for _, v := range vs {
		if aud.Withholds(v) {
			s.log.ErrorContext(ctx, "store returned a withheld resource to a search; dropped", "type", v.Type, "id", v.ID, "version", v.VersionID)
			continue
		}
		out = append(out, v)
	}
	return out
}
