package server

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Hardening beside authorization (issue 14): security headers on every
// answer, CORS only for configured origins, and a request rate per client.

// securityHeaders is middleware: what a browser needs to never render,
// frame, sniff or cache an answer (the API serves PHI, never pages), and
// HSTS over TLS.
func (s *Server) securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		if s.auth != nil {
			// Answers to an authenticated caller are its alone: no shared
			// cache keeps them.
			h.Set("Cache-Control", "no-store")
		}
		if c.Request.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
	}
}

// cors is middleware: with Auth.CORSOrigins, the CORS headers for those
// origins (and the answer to their preflight requests, which carry no
// token); without, nothing: a browser on another origin cannot read the
// API.
func (s *Server) cors() gin.HandlerFunc {
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if s.auth == nil || origin == "" || !slices.Contains(s.auth.CORSOrigins, origin) {
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Last-Modified, X-Request-Id, Retry-After, WWW-Authenticate")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
		}
	}
}

// rateLimit is middleware: each client (a request's principal, else its
// address: the token endpoint's callers) may send Auth.RateLimit
// requests a second on average, in bursts of Auth.RateBurst; beyond, 429
// with Retry-After, before anything is read.
func (s *Server) rateLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.auth == nil || s.auth.RateLimit <= 0 {
			return
		}
		key := "addr:" + c.ClientIP()
		if p := PrincipalOf(c); p != nil {
			key = "client:" + p.ClientID
		}
		if wait := s.limiter.take(key, s.auth.RateLimit, s.auth.RateBurst, time.Now()); wait > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			err := fhir.Errorf(fhir.IssueType("throttled"), "", "too many requests from this client: at most %g a second (bursts of %d); retry after %s",
				s.auth.RateLimit, max(s.auth.RateBurst, 1), wait.Round(time.Millisecond)).WithStatus(http.StatusTooManyRequests)
			if strings.HasPrefix(c.Request.URL.Path, "/auth/") {
				c.Header("Cache-Control", "no-store")
				c.AbortWithStatusJSON(http.StatusTooManyRequests, &smart.TokenError{Code: "slow_down", Description: fhir.AsError(err).Issues[0].Diagnostics})
				return
			}
			s.refuse(c, err, PrincipalOf(c))
		}
	}
}

// rateLimiter holds a token bucket per client.
type rateLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token of key's bucket, or says how long until one is
// there.
func (l *rateLimiter) take(key string, rate float64, burst int, now time.Time) time.Duration {
	b := float64(max(burst, 1))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	if now.Sub(l.swept) > time.Minute { // forget idle clients
		for k, bk := range l.buckets {
			if now.Sub(bk.last) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	bk, ok := l.buckets[key]
	if !ok {
		bk = &bucket{tokens: b, last: now}
		l.buckets[key] = bk
	}
	bk.tokens = min(b, bk.tokens+now.Sub(bk.last).Seconds()*rate)
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return 0
	}
	return time.Duration((1 - bk.tokens) / rate * float64(time.Second))
}
