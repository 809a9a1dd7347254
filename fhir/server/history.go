package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// history handles GET /{type}/{id}/_history: every version, newest first,
// deletions included.
func (s *Server) history(c *gin.Context) {
	k := fhir.Key{Tenant: tenantOf(c), Type: c.Param("type"), ID: c.Param("id")}
	for p := range c.Request.URL.Query() {
		if p != "_format" && p != "_pretty" {
			// _count, _since and _at arrive with the search issue; until
			// then refuse rather than silently return something else.
			s.fail(c, fhir.Errorf(fhir.IssueNotSupported, "", "history parameter %q is not supported yet", p))
			return
		}
	}
	versions, err := s.store.History(c.Request.Context(), k, 0)
	if errors.Is(err, fhir.ErrNotFound) || err == nil && len(versions) == 0 {
		err = notFound(fhir.ErrNotFound, k)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, s.historyBundle(s.base+"/"+k.Type+"/"+k.ID+"/_history", versions))
}
