package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// routes is the whole FHIR REST surface in one table.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// kapbridge sits behind no proxy it knows of: never trust
	// X-Forwarded-For when recording a client address.
	_ = r.SetTrustedProxies(nil)
	r.Use(requestID(), s.accessLog(), s.recoverPanic(), checkRequestPath, negotiate(s.lim.MaxBodyBytes), s.admit(), s.conformanceReady)
	r.Use(s.requestDeadline()) // every handler's context ends at the request's time limit

	r.GET("/metadata", s.capabilities)
	r.GET("/_history", s.systemHistory) // system history
	for _, d := range s.docs {
		r.GET(d.Path, func(c *gin.Context) { c.Data(http.StatusOK, d.ContentType, d.Body) })
	}
	r.POST("/", s.bundle) // batch and transaction Bundles

	typ := r.Group("/:type", knownType)
	typ.GET("", s.search)                       // search
	typ.POST("/_search", s.searchPost)          // search with a form body
	typ.GET("/_history", s.typeHistory)         // type history
	typ.GET("/:id/:compartment", s.compartment) // GET /Patient/{id}/{type}, /Patient/{id}/$everything
	typ.POST("", s.create)                      // create, conditional create (If-None-Exist)
	typ.PUT("", s.conditionalUpdate)            // PUT /Type?identifier=system|value
	typ.POST("/:id", s.typeOperation)           // POST /Type/$validate
	typ.GET("/:id", s.read)                     // read
	typ.PUT("/:id", s.update)                   // update, update-as-create
	typ.DELETE("/:id", s.delete)                // delete
	typ.GET("/:id/_history", s.history)         // instance history
	typ.GET("/:id/_history/:vid", s.vread)      // vread

	r.NoRoute(func(c *gin.Context) {
		failStatic(c, fhir.Errorf(fhir.IssueNotFound, "", "no FHIR interaction at %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		failStatic(c, fhir.Errorf(fhir.IssueNotSupported, "", "method %s is not supported at %s", c.Request.Method, c.Request.URL.Path).WithStatus(http.StatusMethodNotAllowed))
	})
	return r
}

// knownType answers 404 for a path whose first segment is not an R4
// resource type.
func knownType(c *gin.Context) {
	if t := c.Param("type"); !fhir.IsResourceType(t) {
		failStatic(c, fhir.Errorf(fhir.IssueNotFound, "", "unknown resource type %q", t))
	}
}
