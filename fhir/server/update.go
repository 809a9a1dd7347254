package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// update handles PUT /{type}/{id}: a new version, or update-as-create with
// the client's id. If-Match makes it version-aware (412 on mismatch).
func (s *Server) update(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	if !idPattern.MatchString(id) {
		s.fail(c, fhir.Errorf(fhir.IssueInvalid, "", "%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", id))
		return
	}
	ifMatch, err := parseIfMatch(c.GetHeader("If-Match"))
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.readResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	switch bodyID := res.GetString("id"); {
	case bodyID == "":
		s.fail(c, fhir.Errorf(fhir.IssueRequired, typ+".id", "an update must carry the id %q in the resource", id))
		return
	case bodyID != id:
		s.fail(c, fhir.Errorf(fhir.IssueInvalid, typ+".id", "resource id %q does not match the id %q in the URL", bodyID, id))
		return
	}
	k := fhir.Key{Tenant: tenantOf(c), Type: typ, ID: id}
	aud := audienceOf(c)
	var out fhir.Version
	var status int
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) (err error) {
		out, status, err = s.updateIn(c.Request.Context(), tx, k, res, ifMatch, aud)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, status, out)
}

// conditionalUpdate handles PUT /{type}?identifier=system|value: no match
// creates, one match updates it, several are a 412.
func (s *Server) conditionalUpdate(c *gin.Context) {
	typ := c.Param("type")
	if c.Request.URL.RawQuery == "" {
		s.fail(c, fhir.Errorf(fhir.IssueNotSupported, "", "PUT needs an id (PUT /%s/{id}) or a condition (PUT /%s?identifier=system|value)", typ, typ).WithStatus(http.StatusMethodNotAllowed))
		return
	}
	criteria := conditionalQuery(c)
	ifMatch, err := parseIfMatch(c.GetHeader("If-Match"))
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.readResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	tenant, aud := tenantOf(c), audienceOf(c)
	bodyID := res.GetString("id")
	var out fhir.Version
	var status int
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) (err error) {
		ctx := c.Request.Context()
		id, err := s.conditionalUpdateID(ctx, tx, tenant, typ, criteria, bodyID, aud)
		if err != nil {
			return err
		}
		out, status, err = s.updateIn(ctx, tx, fhir.Key{Tenant: tenant, Type: typ, ID: id}, res, ifMatch, aud)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, status, out)
}

// conditionalQuery is the request query without the parameters that shape
// the response (_format, _pretty), which are not search criteria.
func conditionalQuery(c *gin.Context) string {
	q := c.Request.URL.Query()
	q.Del("_format")
	q.Del("_pretty")
	return q.Encode()
}
