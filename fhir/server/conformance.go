package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// The server's own conformance resources (Config.Conformance: profiles,
// CodeSystems, ValueSets, Questionnaires). They are stored like any other
// resource, under their own ids, so read, search, history and _include
// serve them with no special code; what is special is that
//
//   - they are written by the server itself, once per process, before the
//     first request is handled (SeedConformance; a version is added only
//     when an artifact changed, so restarts do not grow their history);
//   - no client write may change them: create, update and delete of an
//     artifact's id, or of any resource whose canonical url lies under an
//     artifact's canonical base, is refused with 403 (also inside Bundles);
//   - their profiles, ValueSets and CodeSystems join Config.Profiles, so
//     every write of a resource claiming one of the profiles in
//     meta.profile is checked against it (422 if it fails), and the
//     CapabilityStatement lists the profiles as supportedProfile.
type conformance struct {
	docs     []conformanceDoc
	keys     map[string]bool     // "Type/id" of every artifact
	bases    []string            // canonical bases, e.g. "http://kapbridge.org/fhir/"
	profiles map[string][]string // resource type -> profile URLs

	mu     sync.Mutex // serializes seeding
	seeded atomic.Bool
}

type conformanceDoc struct {
	typ, id string
	json    []byte
}

// newConformance reads the artifacts, and returns with them the profiles
// writes are checked against: base with the artifacts' profiles and
// terminology. An artifact that is not valid R4, has no id or cannot be
// compiled is logged and left out (the artifacts are built in and tested,
// so this is a build defect, not a request error).
func newConformance(docs [][]byte, base *fhir.Profiles, log *slog.Logger) (*conformance, *fhir.Profiles) {
	if len(docs) == 0 {
		return nil, base
	}
	profiles := base
	cf := &conformance{keys: map[string]bool{}, profiles: map[string][]string{}}
	bases := map[string]bool{}
	for i, data := range docs {
		res, typ, err := fhir.ParseResource(data)
		id := ""
		if err == nil {
			id = res.GetString("id")
			if id == "" || !idPattern.MatchString(id) {
				err = fhir.Errorf(fhir.IssueRequired, typ+".id", "a conformance resource needs a valid id")
			}
		}
		if err == nil {
			var with *fhir.Profiles
			if with, err = profiles.With(data); err == nil {
				profiles = with
			}
		}
		if err != nil {
			log.Error("conformance resource left out", "index", i, "error", err)
			continue
		}
		cf.docs = append(cf.docs, conformanceDoc{typ, id, data})
		cf.keys[typ+"/"+id] = true
		url := res.GetString("url")
		// A canonical URL is {base}/{type}/{id} by convention: the base is
		// the namespace no client may publish into.
		if base, _, ok := strings.Cut(url, "/"+typ+"/"); ok {
			bases[base+"/"] = true
		}
		if typ == "StructureDefinition" && res.GetString("derivation") == "constraint" && res.GetString("kind") == "resource" {
			t := res.GetString("type")
			cf.profiles[t] = append(cf.profiles[t], url)
		}
	}
	for b := range bases {
		cf.bases = append(cf.bases, b)
	}
	sort.Strings(cf.bases)
	for _, urls := range cf.profiles {
		sort.Strings(urls)
	}
	return cf, profiles
}

// profilesFor lists the profiles of typ, for the CapabilityStatement.
func (cf *conformance) profilesFor(typ string) []string {
	if cf == nil {
		return nil
	}
	return cf.profiles[typ]
}

// guard refuses a write of an artifact's id, or of a resource whose url
// is under an artifact's canonical base. res is nil for a delete.
func (cf *conformance) guard(k fhir.Key, res *fhir.Value) error {
	if cf == nil {
		return nil
	}
	if cf.keys[k.Type+"/"+k.ID] {
		return forbidden(k.Type+".id", "%s/%s is one of the server's conformance resources: it is read-only", k.Type, k.ID)
	}
	if res == nil {
		return nil
	}
	if url := res.GetString("url"); url != "" {
		for _, b := range cf.bases {
			if strings.HasPrefix(url, b) || url+"/" == b {
				return forbidden(k.Type+".url", "canonical URLs under %s are reserved for the server's own conformance resources, which are read-only", b)
			}
		}
	}
	return nil
}

func forbidden(expr, format string, args ...any) error {
	return fhir.Errorf(fhir.IssueType("forbidden"), expr, format, args...).WithStatus(http.StatusForbidden)
}

// checkWrite is what every create and update (direct or in a Bundle) and
// every delete (res nil) must pass beyond base validation: the
// conformance guard, then the profiles the resource claims.
func (s *Server) checkWrite(k fhir.Key, res *fhir.Value) error {
	if err := s.conf.guard(k, res); err != nil {
		return err
	}
	if res == nil {
		return nil
	}
	if issues := s.profiles.Validate(res); fhir.HasErrors(issues) {
		return fhir.ProfileError(issues)
	}
	return nil
}

// SeedConformance stores the conformance resources (in the default
// tenant, the only one so far) if that has not been done by this Server:
// each artifact not yet stored, or stored with other content, is written
// as a new version. The first request does it if nothing called it
// before; calling it at startup makes a storage failure fail the start.
func (s *Server) SeedConformance(ctx context.Context) error {
	cf := s.conf
	if cf == nil || cf.seeded.Load() {
		return nil
	}
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.seeded.Load() {
		return nil
	}
	err := s.store.Update(ctx, func(tx fhir.Tx) error {
		for _, d := range cf.docs {
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: d.typ, ID: d.id}
			cur, found, err := current(ctx, tx, k)
			if err != nil {
				return err
			}
			if found && !cur.Deleted && sameContent(cur.JSON, d.json) {
				continue
			}
			// A fresh tree per write: put stamps it, and fn may run again.
			res, err := fhir.ParseJSON(d.json, fhir.DefaultLimits)
			if err != nil {
				return err
			}
			if _, err := s.put(ctx, tx, k, cur, res, ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	cf.seeded.Store(true)
	return nil
}

// sameContent compares a stored version with an artifact as decoded
// JSON, without what the server owns (meta.versionId, meta.lastUpdated).
func sameContent(stored, artifact []byte) bool {
	var a, b map[string]any
	if json.Unmarshal(stored, &a) != nil || json.Unmarshal(artifact, &b) != nil {
		return false
	}
	for _, m := range []map[string]any{a, b} {
		if meta, ok := m["meta"].(map[string]any); ok {
			delete(meta, "versionId")
			delete(meta, "lastUpdated")
			if len(meta) == 0 {
				delete(m, "meta")
			}
		}
	}
	return reflect.DeepEqual(a, b)
}

// conformanceReady is middleware: the conformance resources are in the
// store before any request reads or writes it.
func (s *Server) conformanceReady(c *gin.Context) {
	if err := s.conformanceLoaded(c.Request.Context()); err != nil {
		s.fail(c, err)
	}
}

// conformanceLoaded stores the conformance resources if that is not done
// yet; the error is the answer to a request that finds them missing.
func (s *Server) conformanceLoaded(ctx context.Context) error {
	if s.conf == nil || s.conf.seeded.Load() {
		return nil
	}
	if err := s.SeedConformance(ctx); err != nil {
		return fhir.Errorf(fhir.IssueTransient, "", "the server's conformance resources could not be loaded; try again").Wrap(err)
	}
	return nil
}
