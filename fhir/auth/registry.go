package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Registry is the smart.ClientRegistry of a Store: each client row with its
// JWK Set and allowed scopes parsed.
type Registry struct{ Store Store }

var _ smart.ClientRegistry = Registry{}

// Client implements smart.ClientRegistry. A row whose JWK Set or scopes no
// longer parse is a server error (someone edited the table), not the
// client's fault.
func (r Registry) Client(ctx context.Context, id string) (*smart.Client, error) {
	row, err := r.Store.AuthClient(ctx, id)
	if errors.Is(err, ErrNoClient) {
		return nil, fmt.Errorf("%w: %w", smart.ErrUnknownClient, err)
	}
	if err != nil {
		return nil, err
	}
	return ClientOf(row)
}

// ClientOf is the smart.Client a row registers.
func ClientOf(row ClientRow) (*smart.Client, error) {
	c := &smart.Client{ID: row.ID, JWKSURL: row.JWKSURL, Disabled: row.Disabled}
	if row.JWKS != "" {
		set, err := smart.ParseJWKS([]byte(row.JWKS))
		if err != nil {
			return nil, fmt.Errorf("auth: client %q: stored JWK Set: %w", row.ID, err)
		}
		c.JWKS = set
	}
	sc, err := smart.ParseScopes(row.Scopes)
	if err != nil {
		return nil, fmt.Errorf("auth: client %q: stored scopes: %w", row.ID, err)
	}
	c.Scopes = sc
	return c, nil
}

// Replay is the smart.ReplayCache of a Store: an assertion id is refused
// as long as the assertion lives, after a restart and on every replica
// sharing the store.
type Replay struct{ Store Store }

// Remember implements smart.ReplayCache.
func (r Replay) Remember(ctx context.Context, id string, until time.Time) error {
	err := r.Store.RememberJTI(ctx, id, until)
	if errors.Is(err, ErrJTIUsed) {
		return fmt.Errorf("%w: %w", smart.ErrReplayed, err)
	}
	return err
}
