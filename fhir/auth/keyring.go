package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Keys are the gateway's signing keys as a Store holds them: the newest
// live key signs; a retired key keeps verifying for VerifyGrace after its
// retirement, long enough for every token it signed to expire.
type Keys struct {
	Store Store
	// Alg of a key made when there is none, or by Rotate: smart.ES384
	// (default) or smart.RS384.
	Alg string
	// VerifyGrace is how long a retired key keeps verifying; default
	// twice smart.DefaultTokenLifetime.
	VerifyGrace time.Duration
	Now         func() time.Time
}

func (k Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k Keys) alg() string {
	if k.Alg == "" {
		return smart.ES384
	}
	return k.Alg
}

func (k Keys) grace() time.Duration {
	if k.VerifyGrace > 0 {
		return k.VerifyGrace
	}
	return 2 * smart.DefaultTokenLifetime
}

// Load returns the keys in use, the signing key first, making and storing
// one when there is no live key.
func (k Keys) Load(ctx context.Context) ([]*smart.SigningKey, error) {
	rows, err := k.Store.AuthKeys(ctx)
	if err != nil {
		return nil, err
	}
	var signing *smart.SigningKey
	var verifying []*smart.SigningKey
	now := k.now()
	for _, r := range rows { // newest first
		if !r.Retired.IsZero() && now.Sub(r.Retired) > k.grace() {
			continue
		}
		sk, err := smart.ParsePrivateKeyPEM(r.PEM)
		if err != nil {
			return nil, fmt.Errorf("auth: stored signing key %s: %w", r.KID, err)
		}
		if r.Retired.IsZero() && signing == nil {
			signing = sk
			continue
		}
		verifying = append(verifying, sk)
	}
	if signing == nil {
		if signing, err = k.add(ctx); err != nil {
			return nil, err
		}
	}
	return append([]*smart.SigningKey{signing}, verifying...), nil
}

// Rotate makes a new signing key and retires every live one (they keep
// verifying for VerifyGrace). It returns the new key.
func (k Keys) Rotate(ctx context.Context) (*smart.SigningKey, error) {
	rows, err := k.Store.AuthKeys(ctx)
	if err != nil {
		return nil, err
	}
	nk, err := k.add(ctx)
	if err != nil {
		return nil, err
	}
	now := k.now()
	for _, r := range rows {
		if r.Retired.IsZero() {
			r.Retired = now
			if err := k.Store.PutAuthKey(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	return nk, nil
}

func (k Keys) add(ctx context.Context) (*smart.SigningKey, error) {
	sk, err := smart.GenerateKey(k.alg())
	if err != nil {
		return nil, err
	}
	pem, err := sk.MarshalPEM()
	if err != nil {
		return nil, err
	}
	// Created a microsecond apart at least from the key it replaces, so
	// "newest first" is unambiguous.
	if err := k.Store.PutAuthKey(ctx, KeyRow{KID: sk.KeyID(), Alg: sk.Alg(), PEM: pem, Created: k.now()}); err != nil {
		return nil, err
	}
	return sk, nil
}
