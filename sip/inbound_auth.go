package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
)

// InboundTrunk says who may send calls to the gateway and how it proves it.
type InboundTrunk struct {
	Name string
	// Sources are the networks INVITEs from this trunk come from. Empty with
	// a Username: any source, digest authentication only.
	Sources []netip.Prefix
	// Username and Password, when set, are the digest credentials the trunk
	// must present (RFC 3261 section 22.4): the gateway challenges with 401.
	Username string
	Password string
}

func (t *InboundTrunk) fromSource(ip netip.Addr) bool {
	for _, p := range t.Sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// nonceLifetime is how long a digest nonce the gateway issued stays valid.
const nonceLifetime = 5 * time.Minute

// nonces issues and checks stateless digest nonces: "<unix>.<hmac>".
type nonces struct{ key [32]byte }

func newNonces() *nonces {
	n := &nonces{}
	_, _ = rand.Read(n.key[:])
	return n
}

func (n *nonces) sign(ts string) string {
	m := hmac.New(sha256.New, n.key[:])
	m.Write([]byte(ts))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (n *nonces) issue(now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + n.sign(ts)
}

func (n *nonces) valid(nonce string, now time.Time) bool {
	ts, mac, ok := strings.Cut(nonce, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(n.sign(ts))) != 1 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	age := now.Sub(time.Unix(sec, 0))
	return age >= -time.Minute && age <= nonceLifetime
}

// checkDigest verifies an Authorization header value for method against
// the trunk's credentials and a nonce the gateway issued.
func checkDigest(header, method, realm string, t *InboundTrunk, n *nonces, now time.Time) bool {
	cred, err := digest.ParseCredentials(header)
	if err != nil || cred.Username != t.Username || cred.Realm != realm || !n.valid(cred.Nonce, now) {
		return false
	}
	chal := &digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: method, URI: cred.URI, Count: cred.Nc, Cnonce: cred.Cnonce,
		Username: t.Username, Password: t.Password,
	})
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) == 1
}

// challenge returns a WWW-Authenticate header value.
func challenge(realm string, n *nonces, now time.Time) string {
	c := &digest.Challenge{Realm: realm, Nonce: n.issue(now), Algorithm: "MD5", QOP: []string{"auth"}}
	return c.String()
}

// rateLimiter is a token bucket per source address, bounded in size, so an
// INVITE flood from one source is refused without touching other sources.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; past it, idle buckets are dropped.
const maxBuckets = 10000

func newRateLimiter(rate float64, burst int) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), buckets: make(map[netip.Addr]*bucket)}
}

// allow takes a token for ip; false when the source is over its rate.
func (r *rateLimiter) allow(ip netip.Addr, now time.Time) bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[ip]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			for k, v := range r.buckets {
				if now.Sub(v.last).Seconds()*r.rate >= r.burst {
					delete(r.buckets, k)
				}
			}
			if len(r.buckets) >= maxBuckets {
				return false // under a spread-out flood, refuse new sources
			}
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[ip] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
