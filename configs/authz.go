package configs

import (
	"strings"

	"github.com/matrix-gateway/gateway/signalling"
)

// matchAny reports whether s matches one of patterns (signalling's pattern
// syntax: globs or "re:"); a pattern that does not compile matches nothing
// (Validate reports it).
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if pat, err := signalling.CompilePattern(p); err == nil && pat.Match(s) {
			return true
		}
	}
	return false
}

// UserAllowed reports whether a Matrix user ID matches one of the
// authorization.users globs; an empty list allows nobody. It agrees with
// signalling.Policy's user rule.
func (c *Config) UserAllowed(userID string) bool {
	return matchAny(c.Authorization.Users, userID)
}

// TrunkFor returns the first trunk serving an E.164 destination (a trunk
// with no numbers serves all), or nil when none does. Who may call which
// destination (authorization.*) is decided by signalling.Policy, not here.
func (c *Config) TrunkFor(e164 string) *Trunk {
	for i := range c.SIP.Trunks {
		t := &c.SIP.Trunks[i]
		if len(t.Numbers) == 0 || matchAny(t.Numbers, e164) {
			return t
		}
	}
	return nil
}

// CallerIDFor returns the E.164 caller ID presented for a Matrix user:
// authorization.caller_ids[user], else default_caller_id, else "".
func (c *Config) CallerIDFor(userID string) string {
	if n, ok := c.Authorization.CallerIDs[userID]; ok {
		return n
	}
	return c.Authorization.DefaultCallerID
}

// FormatDestination writes an E.164 number as the trunk wants it in the
// Request-URI user part: "e164" keeps it, "e164_no_plus" drops the '+',
// "national" replaces the default country code by national_prefix (numbers
// of other countries stay in E.164).
func (t *Trunk) FormatDestination(e164, defaultCountryCode string) string {
	switch t.NumberFormat {
	case "e164_no_plus":
		return strings.TrimPrefix(e164, "+")
	case "national":
		if rest, ok := strings.CutPrefix(e164, "+"+defaultCountryCode); ok && defaultCountryCode != "" {
			return t.NationalPrefix + rest
		}
	}
	return e164
}

// FromUserFor renders the trunk's from_user template. callerID is the
// user's E.164 caller ID (written like the destination) or "", in which case
// {caller_id} falls back to the Matrix localpart.
func (t *Trunk) FromUserFor(callerID, localpart, defaultCountryCode string) string {
	cid := localpart
	if callerID != "" {
		cid = t.FormatDestination(callerID, defaultCountryCode)
	}
	return strings.NewReplacer("{caller_id}", cid, "{localpart}", localpart).Replace(t.FromUser)
}

// FromHost returns from_domain, or the trunk host when it is empty.
func (t *Trunk) FromHost() string {
	if t.FromDomain != "" {
		return t.FromDomain
	}
	return t.Host
}

// Notes returns remarks about a configuration that are valid but probably
// not meant, such as an authorization policy that lets nobody dial out.
func (c *Config) Notes() []string {
	var notes []string
	a := c.Authorization
	if len(a.Users) == 0 {
		notes = append(notes, "authorization.users is empty: nobody may dial out")
	}
	if len(a.Numbers) == 0 {
		notes = append(notes, "authorization.numbers is empty: no destination may be dialled")
	}
	for _, p := range a.Numbers {
		if p == "*" || p == "+*" || p == "re:.*" {
			notes = append(notes, "authorization.numbers allows every destination ("+p+"): consider limiting it to your country and denying premium-rate prefixes")
			break
		}
	}
	if c.WebRTC.IncludeLoopbackCandidates {
		notes = append(notes, "webrtc.include_loopback_candidates is on: meant for tests only")
	}
	return notes
}
