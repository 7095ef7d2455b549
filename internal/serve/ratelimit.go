package serve

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// RateLimiter is a token bucket per client: each client may make Burst requests at once
// and Rate requests per second on average. Idle clients are forgotten.
type RateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter allows rate requests per second with bursts of burst per client; a rate
// of zero or less disables limiting (Allow always succeeds).
func NewRateLimiter(rate float64, burst int) *RateLimiter {
	if burst < 1 {
		burst = 1
	}
	return &RateLimiter{rate: rate, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token for client and reports whether one was available, and if not how
// long until one will be.
func (l *RateLimiter) Allow(client string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		l.sweep(now)
	}
	b, ok := l.buckets[client]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep drops buckets that have refilled completely (their clients have been idle).
func (l *RateLimiter) sweep(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}

// clientKey identifies the client of r for rate limiting: its API key name when
// authenticated, else its IP address.
func clientKey(r *http.Request) string {
	if p := principalFrom(r.Context()); p != nil && p.KeyName != "" {
		return "key:" + p.KeyName
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
