package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Fetcher gets the JWK Sets clients publish at their registered URL and
// keeps each as long as its Cache-Control allows: max-age (capped at
// MaxJWKSAge), nothing for no-store or no-cache, DefaultJWKSAge without
// either. A failed fetch is not cached. The zero value is ready to use.
type Fetcher struct {
	Client *http.Client     // nil: a client with a 10 s timeout
	Now    func() time.Time // nil: time.Now

	mu    sync.Mutex
	cache map[string]cachedJWKS
}

type cachedJWKS struct {
	set   *smart.JWKS
	until time.Time
}

// Cache lifetimes of a published JWK Set.
const (
	DefaultJWKSAge  = 5 * time.Minute
	MaxJWKSAge      = 24 * time.Hour
	maxJWKSBodySize = 1 << 20
)

var _ smart.JWKSFetcher = (*Fetcher)(nil)

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// FetchJWKS implements smart.JWKSFetcher.
func (f *Fetcher) FetchJWKS(ctx context.Context, url string) (*smart.JWKS, error) {
	now := f.now()
	f.mu.Lock()
	if c, ok := f.cache[url]; ok && now.Before(c.until) {
		f.mu.Unlock()
		return c.set, nil
	}
	f.mu.Unlock()

	hc := f.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: JWK Set URL %q: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: fetch JWK Set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: fetch JWK Set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: fetch JWK Set: %s answered %d", url, resp.StatusCode)
	}
	if len(body) > maxJWKSBodySize {
		return nil, fmt.Errorf("auth: fetch JWK Set: over %d bytes", maxJWKSBodySize)
	}
	set, err := smart.ParseJWKS(body)
	if err != nil {
		return nil, err
	}
	if age := CacheAge(resp.Header.Get("Cache-Control")); age > 0 {
		f.mu.Lock()
		if f.cache == nil {
			f.cache = map[string]cachedJWKS{}
		}
		f.cache[url] = cachedJWKS{set: set, until: now.Add(age)}
		f.mu.Unlock()
	}
	return set, nil
}

// CacheAge is how long a response with this Cache-Control may be kept: 0
// for no-store or no-cache, max-age (at most MaxJWKSAge), DefaultJWKSAge
// when neither is said.
func CacheAge(cc string) time.Duration {
	age := DefaultJWKSAge
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil || n < 0 {
				return 0 // a malformed max-age is taken as stale (RFC 9111 4.2.1)
			}
			age = min(time.Duration(n)*time.Second, MaxJWKSAge)
			if n > int64(MaxJWKSAge/time.Second) {
				age = MaxJWKSAge
			}
		}
	}
	return age
}
