package memstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir/auth"
)

var _ auth.Store = (*Store)(nil)

// authState holds the gateway's clients, keys and used jtis (auth.Store);
// it has its own lock, apart from the resources'.
type authState struct {
	mu      sync.Mutex
	clients map[string]auth.ClientRow
	keys    map[string]auth.KeyRow
	jti     map[string]time.Time
}

var authStates sync.Map // *Store -> *authState: Store's layout stays as it is

func (s *Store) auth() *authState {
	v, _ := authStates.LoadOrStore(s, &authState{clients: map[string]auth.ClientRow{}, keys: map[string]auth.KeyRow{}, jti: map[string]time.Time{}})
	return v.(*authState)
}

// AuthClient implements auth.Store.
func (s *Store) AuthClient(_ context.Context, id string) (auth.ClientRow, error) {
	a := s.auth()
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clients[id]
	if !ok {
		return auth.ClientRow{}, fmt.Errorf("memstore: client %q: %w", id, auth.ErrNoClient)
	}
	return c, nil
}

// PutAuthClient implements auth.Store.
func (s *Store) PutAuthClient(_ context.Context, c auth.ClientRow) error {
	a := s.auth()
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.clients[c.ID]; ok {
		c.Created = old.Created
	} else if c.Created.IsZero() {
		c.Created = s.now().UTC()
	}
	a.clients[c.ID] = c
	return nil
}

// AuthClients implements auth.Store.
func (s *Store) AuthClients(context.Context) ([]auth.ClientRow, error) {
	a := s.auth()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]auth.ClientRow, 0, len(a.clients))
	for _, c := range a.clients {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AuthKeys implements auth.Store.
func (s *Store) AuthKeys(context.Context) ([]auth.KeyRow, error) {
	a := s.auth()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]auth.KeyRow, 0, len(a.keys))
	for _, k := range a.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].KID < out[j].KID
	})
	return out, nil
}

// PutAuthKey implements auth.Store.
func (s *Store) PutAuthKey(_ context.Context, k auth.KeyRow) error {
	a := s.auth()
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.keys[k.KID]; ok {
		old.Retired = k.Retired
		a.keys[k.KID] = old
		return nil
	}
	if k.Created.IsZero() {
		k.Created = s.now().UTC()
	}
	a.keys[k.KID] = k
	return nil
}

// RememberJTI implements auth.Store.
func (s *Store) RememberJTI(_ context.Context, id string, until time.Time) error {
	a := s.auth()
	now := s.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.jti[id]; ok && now.Before(t) {
		return auth.ErrJTIUsed
	}
	if len(a.jti) > 1024 {
		for k, t := range a.jti {
			if !now.Before(t) {
				delete(a.jti, k)
			}
		}
	}
	a.jti[id] = until
	return nil
}
