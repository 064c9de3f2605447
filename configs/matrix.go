package configs

import (
	"net"
	"net/netip"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/signalling"
)

// ghostParts splits the ghost localpart template around {number}.
func (c *Config) ghostParts() (prefix, suffix string) {
	prefix, suffix, _ = strings.Cut(c.AppService.GhostLocalpartTemplate, "{number}")
	return prefix, suffix
}

// GhostLocalpart returns the localpart of the ghost user standing for an
// E.164 number ("+15550100" -> "pstn_15550100" with the default template).
func (c *Config) GhostLocalpart(e164 string) string {
	prefix, suffix := c.ghostParts()
	return prefix + strings.TrimPrefix(e164, "+") + suffix
}

// GhostUserID returns the full Matrix user ID of the ghost for an E.164 number.
func (c *Config) GhostUserID(e164 string) id.UserID {
	return id.NewUserID(c.GhostLocalpart(e164), c.Homeserver.Domain)
}

// BotUserID returns the bot's full Matrix user ID.
func (c *Config) BotUserID() id.UserID {
	return id.NewUserID(c.AppService.BotLocalpart, c.Homeserver.Domain)
}

// ghostLocalpartRegex matches a ghost localpart and captures its digits.
func (c *Config) ghostLocalpartRegex() string {
	prefix, suffix := c.ghostParts()
	return "^" + regexp.QuoteMeta(prefix) + "([0-9]+)" + regexp.QuoteMeta(suffix) + "$"
}

// GhostUserRegex returns the anchored regex of all ghost user IDs, as put in
// the registration's user namespace, e.g. `^@pstn_[0-9]+:example\.org$`.
func (c *Config) GhostUserRegex() string {
	prefix, suffix := c.ghostParts()
	return "^@" + regexp.QuoteMeta(prefix) + "[0-9]+" + regexp.QuoteMeta(suffix) +
		":" + regexp.QuoteMeta(c.Homeserver.Domain) + "$"
}

// BotUserRegex returns the anchored regex matching exactly the bot's user ID.
func (c *Config) BotUserRegex() string {
	return "^" + regexp.QuoteMeta(string(c.BotUserID())) + "$"
}

// NumberFromGhost returns the E.164 number ("+" and digits) a ghost user ID
// stands for, and false when userID is not one of this gateway's ghosts.
func (c *Config) NumberFromGhost(userID id.UserID) (string, bool) {
	local, server, err := userID.Parse()
	if err != nil || server != c.Homeserver.Domain {
		return "", false
	}
	re, err := regexp.Compile(c.ghostLocalpartRegex())
	if err != nil {
		return "", false
	}
	m := re.FindStringSubmatch(local)
	if m == nil || len(m[1]) > 15 {
		return "", false
	}
	return "+" + m[1], true
}

// GhostDisplayname renders the ghost display name template for an E.164
// number: {formatted} becomes signalling.Format's output ("+1 555 010 0100"),
// {number} the digits.
func (c *Config) GhostDisplayname(e164 string) string {
	r := strings.NewReplacer(
		"{formatted}", signalling.Format(e164),
		"{number}", strings.TrimPrefix(e164, "+"),
	)
	return r.Replace(c.AppService.GhostDisplaynameTemplate)
}

// RTPAdvertiseAddr returns the IP written in SDP toward trunks:
// media.rtp_advertise_ip when set, else media.rtp_listen_ip when it is a
// specific address, else the host of sip.listen when that is a specific IP.
// It returns false when none of them gives one.
func (c *Config) RTPAdvertiseAddr() (netip.Addr, bool) {
	if c.Media.RTPAdvertiseIP != "" {
		ip, err := netip.ParseAddr(c.Media.RTPAdvertiseIP)
		return ip, err == nil && !ip.IsUnspecified()
	}
	if ip, err := netip.ParseAddr(c.Media.RTPListenIP); err == nil && !ip.IsUnspecified() {
		return ip, true
	}
	if host, _, err := net.SplitHostPort(c.SIP.Listen); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
