package server

import (
	"net/http"
	"time"

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
	var out fhir.Version
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) error {
		ctx := c.Request.Context()
		cur, found, err := current(ctx, tx, k)
		if err != nil {
			return err
		}
		if !found {
			return notFound(fhir.ErrNotFound, k)
		}
		if err := checkIfMatch(ifMatch, cur, found); err != nil {
			return err
		}
		if cur.Deleted {
			out = cur
			return nil
		}
		out = fhir.Version{Key: k, VersionID: cur.VersionID + 1, LastUpdated: s.now().UTC().Truncate(time.Microsecond), Deleted: true}
		return tx.Put(ctx, out, fhir.Index{})
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("ETag", etag(out.VersionID))
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}
