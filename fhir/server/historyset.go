package server

import (
	"encoding/json"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// The history Bundle of the three history interactions (history.go).

// bundleEntry is one Bundle.entry as the server writes it. Resources are
// embedded as stored, byte for byte.
type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string `json:"status"`
	Location     string `json:"location,omitempty"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

type bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Meta         bundleMeta    `json:"meta"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

// historyBundle renders versions (newest first) as a history Bundle; next
// is the next page's link ("" on the last page), total the count of all
// pages (-1: unknown).
func (s *Server) historyBundle(self, next string, versions []fhir.Version, total int) []byte {
	b := bundle{ResourceType: "Bundle", ID: s.newID(), Type: "history",
		Meta: bundleMeta{LastUpdated: write.FormatInstant(s.now())},
		Link: []bundleLink{{Relation: "self", URL: self}}}
	if total >= 0 {
		b.Total = &total
	}
	if next != "" {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: next})
	}
	for _, v := range versions {
		e := bundleEntry{FullURL: s.base + "/" + v.Type + "/" + v.ID,
			Response: &entryResponse{Etag: etag(v.VersionID), LastModified: write.FormatInstant(v.LastUpdated)}}
		// The method that wrote the version (fhir.MethodOf): version 1 of
		// a resource created by PUT is a PUT; a PATCH is a PATCH.
		switch m := fhir.MethodOf(v); {
		case v.Deleted:
			// A deletion has no resource (bdl-5 allows it for history).
			e.Request = &entryRequest{Method: m, URL: v.Type + "/" + v.ID}
			e.Response.Status = "204"
		case m == http.MethodPost:
			e.Resource = v.JSON
			e.Request = &entryRequest{Method: m, URL: v.Type}
			e.Response.Status = "201"
			e.Response.Location = s.location(v)
		default:
			e.Resource = v.JSON
			e.Request = &entryRequest{Method: m, URL: v.Type + "/" + v.ID}
			e.Response.Status = "200"
			if v.VersionID == 1 {
				e.Response.Status = "201"
			}
			e.Response.Location = s.location(v)
		}
		b.Entry = append(b.Entry, e)
	}
	out := marshalJSON(b)
	return out
}
