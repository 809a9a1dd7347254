package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// delete handles DELETE /{type}/{id}: a deletion version; reads then
// answer 410, history keeps every version. Deleting what is already
// deleted changes nothing (204); deleting what never existed is a 404.
func (s *Server) delete(c *gin.Context) {
	k := fhir.Key{Tenant: tenantOf(c), Type: c.Param("type"), ID: c.Param("id")}
	ifMatch, err := parseIfMatch(c.GetHeader("If-Match"))
	if err != nil {
		s.fail(c, err)
		return
	}
	aud := audienceOf(c)
	var out fhir.Version
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) (err error) {
		out, _, err = s.deleteIn(c.Request.Context(), tx, k, ifMatch, aud)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("ETag", etag(out.VersionID))
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}
