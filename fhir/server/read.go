package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// read handles GET /{type}/{id}: the current version, 410 once deleted.
func (s *Server) read(c *gin.Context) {
	k := fhir.Key{Tenant: tenantOf(c), Type: c.Param("type"), ID: c.Param("id")}
	v, err := s.store.Read(c.Request.Context(), k)
	if err == nil && hidden(audienceOf(c), v) {
		err = fhir.ErrNotFound // exactly as if k never existed
	}
	if err != nil {
		s.fail(c, notFound(err, k))
		return
	}
	s.serveVersion(c, v)
}

// serveVersion answers with one stored version the caller may see, or
// 410 for a deletion.
func (s *Server) serveVersion(c *gin.Context, v fhir.Version) {
	setVersionHeaders(c, v)
	if v.Deleted {
		s.fail(c, fhir.Errorf(fhir.IssueDeleted, "", "%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID))
		return
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && inm == etag(v.VersionID) {
		c.Status(http.StatusNotModified)
		c.Writer.WriteHeaderNow()
		return
	}
	writeJSON(c, http.StatusOK, v.JSON)
}

// notFound turns the store's ErrNotFound into a 404 naming what is
// missing; other errors pass through.
func notFound(err error, k fhir.Key) error {
	if errors.Is(err, fhir.ErrNotFound) {
		if !idPattern.MatchString(k.ID) {
			return fhir.Errorf(fhir.IssueNotFound, "", "%q is not a valid FHIR id, so there is no %s with it", k.ID, k.Type)
		}
		return fhir.Errorf(fhir.IssueNotFound, "", "%s/%s not found", k.Type, k.ID)
	}
	return err
}
