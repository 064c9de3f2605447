package signalling

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Toll-fraud policy: who may dial out, which destinations are allowed, and
// how many calls may run at once. An open gateway is an expensive one, so
// everything not allowed explicitly is refused.

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// Users are glob patterns on Matrix user IDs allowed to dial out
	// ("@*:example.org", "@alice:example.org"); "*" matches any run of
	// characters, "?" exactly one. Empty: nobody may dial out.
	Users []string
	// Numbers are the allowed destinations, as globs on E.164 numbers
	// ("+44*", "+1555???????") or "re:<regexp>" (RE2 syntax, anchored at
	// both ends: "re:\+49(30|40)\d+"). Empty: no destination is allowed.
	Numbers []string
	// DenyNumbers use the same syntax and are checked before Numbers
	// (premium rate, satellite, ...).
	DenyNumbers []string
	// MaxCallsPerUser limits concurrent calls per Matrix user; 0 = no limit.
	MaxCallsPerUser int
	// MaxCalls limits concurrent calls through the gateway; 0 = no limit.
	MaxCalls int
}

// PolicyError is a refusal by the Policy. It maps to its Cause through
// CauseOf: CauseForbidden for users and destinations, CauseInvalidNumber for
// a number that is not E.164, CauseLimit for concurrency limits.
type PolicyError struct {
	Cause  Cause
	Reason string // e.g. "number +1900... is denied"
}

// Error formats the refusal as "signalling: call refused: <reason>".
func (e *PolicyError) Error() string { return "signalling: call refused: " + e.Reason }

// HangupCause implements the interface CauseOf looks for.
func (e *PolicyError) HangupCause() Cause { return e.Cause }

// Policy decides who may call which number and counts concurrent calls. It
// is safe for concurrent use. Authorize only reads immutable rules; Acquire
// takes a short mutex once per call set-up and once per release.
type Policy struct {
	users   []string
	allow   []Pattern
	deny    []Pattern
	maxUser int
	maxAll  int

	mu      sync.Mutex
	total   int
	perUser map[string]int
}

var _ Authorizer = (*Policy)(nil)

// numberRule is a compiled Numbers or DenyNumbers entry.
// NewPolicy validates cfg and builds a Policy. It reports every bad pattern
// at once.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	var errs []string
	if cfg.MaxCalls < 0 {
		errs = append(errs, "max_calls must not be negative")
	}
	if cfg.MaxCallsPerUser < 0 {
		errs = append(errs, "max_calls_per_user must not be negative")
	}
	p := &Policy{
		maxUser: cfg.MaxCallsPerUser,
		maxAll:  cfg.MaxCalls,
		perUser: make(map[string]int),
	}
	for _, u := range cfg.Users {
		if u == "" || strings.ContainsAny(u, " \t\r\n") {
			errs = append(errs, fmt.Sprintf("user pattern %q: empty or contains white space", u))
			continue
		}
		p.users = append(p.users, u)
	}
	compile := func(kind string, pats []string) []Pattern {
		var out []Pattern
		for _, s := range pats {
			r, err := CompileNumberPattern(s)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s pattern %q: %v", kind, s, err))
				continue
			}
			out = append(out, r)
		}
		return out
	}
	p.allow = compile("number", cfg.Numbers)
	p.deny = compile("deny number", cfg.DenyNumbers)
	if len(errs) > 0 {
		return nil, fmt.Errorf("signalling: bad policy: %s", strings.Join(errs, "; "))
	}
	return p, nil
}

// Authorize checks that user may call e164 (a normalised number, see
// Normalize). Checks, in order: the user against Users, the number's form,
// DenyNumbers, then Numbers. It returns nil or a *PolicyError.
func (p *Policy) Authorize(user, e164 string) error {
	if !p.userAllowed(user) {
		return &PolicyError{Cause: CauseForbidden, Reason: fmt.Sprintf("user %s not allowed to dial out", printable(user))}
	}
	if !IsE164(e164) {
		return &PolicyError{Cause: CauseInvalidNumber, Reason: fmt.Sprintf("number %s is not in E.164 form", printable(e164))}
	}
	for i := range p.deny {
		if p.deny[i].Match(e164) {
			return &PolicyError{Cause: CauseForbidden, Reason: fmt.Sprintf("number %s is denied", e164)}
		}
	}
	for i := range p.allow {
		if p.allow[i].Match(e164) {
			return nil
		}
	}
	return &PolicyError{Cause: CauseForbidden, Reason: fmt.Sprintf("number %s not in allowed destinations", e164)}
}

// UserAllowed reports whether user matches the policy's user patterns: who
// may use the gateway at all (ghosts join rooms only for them).
func (p *Policy) UserAllowed(user string) bool { return p.userAllowed(user) }

func (p *Policy) userAllowed(user string) bool {
	if user == "" {
		return false
	}
	for _, pat := range p.users {
		if globMatch(pat, user) {
			return true
		}
	}
	return false
}

// Acquire takes a concurrency slot for one call of user, enforcing
// MaxCallsPerUser and MaxCalls. The returned release frees the slot; it is
// idempotent and safe to call from any goroutine. On refusal it returns a
// *PolicyError with CauseLimit and a nil release.
// An empty user (a call from a trunk) counts only toward MaxCalls.
func (p *Policy) Acquire(user string) (release func(), err error) {
	p.mu.Lock()
	if p.maxAll > 0 && p.total >= p.maxAll {
		p.mu.Unlock()
		return nil, &PolicyError{Cause: CauseLimit, Reason: "the gateway's call limit is reached"}
	}
	n := p.perUser[user]
	if user != "" && p.maxUser > 0 && n >= p.maxUser {
		p.mu.Unlock()
		return nil, &PolicyError{Cause: CauseLimit, Reason: fmt.Sprintf("user %s has too many calls at once", printable(user))}
	}
	p.perUser[user] = n + 1
	p.total++
	p.mu.Unlock()

	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			return
		}
		p.mu.Lock()
		if c := p.perUser[user]; c <= 1 {
			delete(p.perUser, user)
		} else {
			p.perUser[user] = c - 1
		}
		p.total--
		p.mu.Unlock()
	}, nil
}

// Active returns the number of calls holding a slot in total and for user.
func (p *Policy) Active(user string) (total, forUser int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.perUser[user]
}

// printable bounds and sanitises untrusted text for error messages.
func printable(s string) string {
	const maxLen = 80
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return quote(s)
}

// globMatch reports whether s matches pattern, where "*" matches any run of
// bytes (also empty) and "?" exactly one rune. It runs in O(len(pattern) *
// len(s)) worst case without allocating (the classic single-backtrack
// algorithm).
