package configs

import (
	"maps"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// Validate checks every rule and returns a *ValidationError listing all
// problems, or nil. Problems carry line numbers when the Config came from
// Parse or Load.
func (c *Config) Validate() error {
	problems := c.validate()
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

var (
	localpartRe   = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)
	trunkNameRe   = regexp.MustCompile(`^[a-z0-9_-]+$`)
	countryCodeRe = regexp.MustCompile(`^[1-9][0-9]{0,2}$`)
	e164Re        = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	digitsRe      = regexp.MustCompile(`^[0-9]*$`)
	hostLabelRe   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	templateVarRe = regexp.MustCompile(`\{[^{}]*\}`)
)

// sampleNumber is the E.164 number templates are rendered with for checks.
const sampleNumber = "+15550100100"

// validator collects validation problems, adding line numbers from the file.
type validator struct {
	problemList
	lines map[string]int
}

func (v *validator) bad(path, format string, args ...any) {
	v.add(path, v.lineOf(path), format, args...)
}

// lineOf finds the line of path or of its nearest ancestor in the file.
func (v *validator) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := v.lines[p]; ok {
			return l
		}
	}
	return 0
}

// validate returns every problem of the configuration.
func (c *Config) validate() []Problem {
	v := &validator{lines: c.lines}
	c.validateMatrix(v)
	c.validateAuthorization(v)
	c.validateSIP(v)
	c.validateInbound(v)
	c.validateMedia(v)
	c.validateWebRTC(v)
	c.validateTURN(v)
	c.validateDatabase(v)
	c.validateModem(v)
	c.validateConferences(v)
	v.oneOf("logging.level", c.Logging.Level, "debug", "info", "warn", "error")
	v.oneOf("logging.format", c.Logging.Format, "console", "json")
	if c.Metrics.Listen != "" {
		v.hostPort("metrics.listen", c.Metrics.Listen)
	}
	checkPlaceholders(v, reflect.ValueOf(c).Elem(), "", false)
	return v.problems
}

func (c *Config) validateMatrix(v *validator) {
	hs := c.Homeserver
	if hs.URL == "" {
		v.bad("homeserver.url", "required: the homeserver's client-server API URL, like https://matrix.example.org")
	} else if u, err := url.Parse(hs.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.bad("homeserver.url", "must be an http:// or https:// URL with a host, got %q", hs.URL)
	} else if u.RawQuery != "" || u.Fragment != "" {
		v.bad("homeserver.url", "must not have a query or fragment, got %q", hs.URL)
	}
	if hs.Domain == "" {
		v.bad("homeserver.domain", "required: the server name after ':' in user IDs")
	} else if !validServerName(hs.Domain) {
		v.bad("homeserver.domain", "must be a server name (host name or IP, optional :port), got %q", hs.Domain)
	}

	as := c.AppService
	if as.Registration == "" {
		v.bad("appservice.registration", "required: path of the registration file")
	}
	v.hostPort("appservice.listen", as.Listen)
	if as.BotLocalpart == "" {
		v.bad("appservice.bot_localpart", "required")
	} else if !localpartRe.MatchString(as.BotLocalpart) {
		v.bad("appservice.bot_localpart", "must only contain a-z 0-9 . _ = - / +, got %q", as.BotLocalpart)
	}
	c.validateGhostTemplates(v)
	if !countryCodeRe.MatchString(c.Phone.DefaultCountryCode) {
		v.bad("phone.default_country_code", "must be 1 to 3 digits without '+' (like \"1\" or \"44\"), got %q", c.Phone.DefaultCountryCode)
	}
}

func (c *Config) validateGhostTemplates(v *validator) {
	const lp = "appservice.ghost_localpart_template"
	tmpl := c.AppService.GhostLocalpartTemplate
	ok := true
	if n := strings.Count(tmpl, "{number}"); n != 1 {
		v.bad(lp, "must contain {number} exactly once, got %q", tmpl)
		ok = false
	}
	for _, m := range templateVarRe.FindAllString(tmpl, -1) {
		if m != "{number}" {
			v.bad(lp, "unknown placeholder %s (only {number} is allowed)", m)
			ok = false
		}
	}
	if ok {
		rendered := c.GhostLocalpart(sampleNumber)
		if !localpartRe.MatchString(rendered) {
			v.bad(lp, "renders %q for %s, which is not a valid localpart (a-z 0-9 . _ = - / + only)", rendered, sampleNumber)
		} else if uid := "@" + rendered + ":" + c.Homeserver.Domain; len(uid)+15-11 > 255 {
			// The sample has 11 digits, E.164 allows 15.
			v.bad(lp, "renders user IDs too long for Matrix (255 bytes)")
		} else if c.AppService.BotLocalpart != "" && regexp.MustCompile(c.ghostLocalpartRegex()).MatchString(c.AppService.BotLocalpart) {
			v.bad(lp, "the bot localpart %q looks like a ghost user; choose a different template or bot_localpart", c.AppService.BotLocalpart)
		}
	}
	const dn = "appservice.ghost_displayname_template"
	dtmpl := c.AppService.GhostDisplaynameTemplate
	if strings.TrimSpace(dtmpl) == "" {
		v.bad(dn, "required, like \"{formatted}\"")
	}
	for _, m := range templateVarRe.FindAllString(dtmpl, -1) {
		if m != "{number}" && m != "{formatted}" {
			v.bad(dn, "unknown placeholder %s (allowed: {formatted} {number})", m)
		}
	}
}

func (c *Config) validateAuthorization(v *validator) {
	a := c.Authorization
	for i, p := range a.Users {
		if !strings.HasPrefix(p, "@") || !strings.Contains(p, ":") || strings.ContainsAny(p, " \t\r\n") {
			v.bad(indexPath("authorization.users", i), "must be a user ID glob like \"@*:example.org\" (starting with '@', no spaces), got %q", p)
		}
	}
	for i, p := range a.Numbers {
		v.pattern(indexPath("authorization.numbers", i), p)
	}
	for i, p := range a.DenyNumbers {
		v.pattern(indexPath("authorization.deny_numbers", i), p)
	}
	if a.MaxCallsPerUser < 1 {
		v.bad("authorization.max_calls_per_user", "must be at least 1, got %d", a.MaxCallsPerUser)
	}
	if a.MaxCalls < 1 {
		v.bad("authorization.max_calls", "must be at least 1, got %d", a.MaxCalls)
	}
	for _, user := range slices.Sorted(maps.Keys(a.CallerIDs)) {
		path := mapKeyPath("authorization.caller_ids", user)
		if !validUserID(user) {
			v.bad(path, "key must be a Matrix user ID like \"@alice:example.org\"")
		}
		if num := a.CallerIDs[user]; !e164Re.MatchString(num) {
			v.bad(path, "must be an E.164 number ('+' and 2-15 digits, the first not 0), got %q", num)
		}
	}
	if a.DefaultCallerID != "" && !e164Re.MatchString(a.DefaultCallerID) {
		v.bad("authorization.default_caller_id", "must be empty or an E.164 number ('+' and 2-15 digits, the first not 0), got %q", a.DefaultCallerID)
	}
}

func (c *Config) validateSIP(v *validator) {
	s := c.SIP
	v.hostPort("sip.listen", s.Listen)
	if s.UserAgent == "" {
		v.bad("sip.user_agent", "required")
	}
	if len(s.Trunks) == 0 {
		v.bad("sip.trunks", "at least one trunk is required")
	}
	names := map[string]int{}
	for i, t := range s.Trunks {
		p := indexPath("sip.trunks", i)
		switch first, dup := names[t.Name]; {
		case t.Name == "":
			v.bad(p+".name", "required")
		case !trunkNameRe.MatchString(t.Name):
			v.bad(p+".name", "must only contain a-z 0-9 _ -, got %q", t.Name)
		case dup:
			v.bad(p+".name", "duplicate trunk name %q (also sip.trunks[%d])", t.Name, first)
		default:
			names[t.Name] = i
		}
		if t.Host == "" {
			v.bad(p+".host", "required")
		} else if !validHost(t.Host) {
			v.bad(p+".host", "must be a host name or IP address, got %q", t.Host)
		}
		v.port(p+".port", t.Port)
		v.oneOf(p+".transport", t.Transport, "udp", "tcp")
		if t.Password != "" && t.Username == "" {
			v.bad(p+".username", "required when a password is set")
		}
		if t.FromUser == "" {
			v.bad(p+".from_user", "required, like \"{caller_id}\"")
		}
		for _, m := range templateVarRe.FindAllString(t.FromUser, -1) {
			if m != "{caller_id}" && m != "{localpart}" {
				v.bad(p+".from_user", "unknown placeholder %s (allowed: {caller_id} {localpart})", m)
			}
		}
		if t.FromDomain != "" && !validHost(t.FromDomain) {
			v.bad(p+".from_domain", "must be empty or a host name or IP address, got %q", t.FromDomain)
		}
		v.oneOf(p+".number_format", t.NumberFormat, "e164", "e164_no_plus", "national")
		if !digitsRe.MatchString(t.NationalPrefix) {
			v.bad(p+".national_prefix", "must be digits only, got %q", t.NationalPrefix)
		}
		for j, pat := range t.Numbers {
			v.pattern(indexPath(p+".numbers", j), pat)
		}
		if t.SetupTimeout <= 0 {
			v.bad(p+".setup_timeout", "must be a positive duration like \"8s\", got %s", t.SetupTimeout)
		}
		if t.RingTimeout <= 0 {
			v.bad(p+".ring_timeout", "must be a positive duration like \"60s\", got %s", t.RingTimeout)
		}
	}
}

// sipCodecs are the codec names media.codecs accepts (case-insensitive).
var sipCodecs = []string{"PCMU", "PCMA", "G722", "OPUS"}

func (c *Config) validateMedia(v *validator) {
	m := c.Media
	listenOK := true
	if ip, err := netip.ParseAddr(m.RTPListenIP); err != nil {
		v.bad("media.rtp_listen_ip", "must be an IP address, got %q", m.RTPListenIP)
		listenOK = false
	} else if ip.Zone() != "" {
		v.bad("media.rtp_listen_ip", "must not have a zone, got %q", m.RTPListenIP)
	}
	if m.RTPAdvertiseIP != "" {
		if ip, err := netip.ParseAddr(m.RTPAdvertiseIP); err != nil || ip.IsUnspecified() {
			v.bad("media.rtp_advertise_ip", "must be empty or a specific IP address, got %q", m.RTPAdvertiseIP)
		}
	} else if _, ok := c.RTPAdvertiseAddr(); !ok && listenOK {
		v.bad("media.rtp_advertise_ip", "required when rtp_listen_ip is unspecified (%s) and sip.listen has no specific IP", m.RTPListenIP)
	}
	minOK := v.portRange("media.rtp_port_min", m.RTPPortMin, 1024)
	maxOK := v.portRange("media.rtp_port_max", m.RTPPortMax, 1024)
	if minOK && m.RTPPortMin%2 != 0 {
		v.bad("media.rtp_port_min", "must be even (RTP uses even ports), got %d", m.RTPPortMin)
	}
	if minOK && maxOK && m.RTPPortMin >= m.RTPPortMax {
		v.bad("media.rtp_port_max", "must be greater than rtp_port_min (%d), got %d", m.RTPPortMin, m.RTPPortMax)
	}
	if len(m.Codecs) == 0 {
		v.bad("media.codecs", "at least one codec is required (PCMU, PCMA, G722, opus)")
	}
	seen := map[string]bool{}
	for i, codec := range m.Codecs {
		p := indexPath("media.codecs", i)
		key := strings.ToUpper(codec)
		if !slices.Contains(sipCodecs, key) {
			v.bad(p, "must be PCMU, PCMA, G722 or opus, got %q", codec)
		} else if seen[key] {
			v.bad(p, "%s is listed twice", codec)
		}
		seen[key] = true
	}
	if m.OpusComplexity < 0 || m.OpusComplexity > 10 {
		v.bad("media.opus_complexity", "must be between 0 and 10, got %d", m.OpusComplexity)
	}
	if m.OpusBitrate < 6000 || m.OpusBitrate > 510000 {
		v.bad("media.opus_bitrate", "must be between 6000 and 510000 bit/s, got %d", m.OpusBitrate)
	}
	if m.DeadMediaTimeout < 0 || (m.DeadMediaTimeout > 0 && m.DeadMediaTimeout < time.Second) {
		v.bad("media.dead_media_timeout", "must be 0 (off) or at least 1s, got %s", m.DeadMediaTimeout)
	}
}

func (c *Config) validateWebRTC(v *validator) {
	w := c.WebRTC
	for i, s := range w.ICEServers {
		p := indexPath("webrtc.ice_servers", i)
		if len(s.URLs) == 0 {
			v.bad(p+".urls", "at least one URL is required")
		}
		for j, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns":
			case "turn", "turns":
				if s.Username == "" || s.Credential == "" {
					v.bad(indexPath(p+".urls", j), "a TURN server needs username and credential")
				}
			default:
				v.bad(indexPath(p+".urls", j), "must start with stun:, stuns:, turn: or turns:, got %q", u)
			}
		}
	}
	if w.UDPPortMin != 0 || w.UDPPortMax != 0 {
		minOK := v.portRange("webrtc.udp_port_min", w.UDPPortMin, 1)
		maxOK := v.portRange("webrtc.udp_port_max", w.UDPPortMax, 1)
		if minOK && maxOK {
			m := c.Media
			switch {
			case w.UDPPortMin > w.UDPPortMax:
				v.bad("webrtc.udp_port_max", "must not be less than udp_port_min (%d), got %d", w.UDPPortMin, w.UDPPortMax)
			case w.UDPPortMin <= m.RTPPortMax && m.RTPPortMin <= w.UDPPortMax:
				v.bad("webrtc.udp_port_min", "range %d-%d overlaps media.rtp_port_min..rtp_port_max (%d-%d)", w.UDPPortMin, w.UDPPortMax, m.RTPPortMin, m.RTPPortMax)
			}
		}
	}
	if w.UDPPort != 0 && v.portRange("webrtc.udp_port", w.UDPPort, 1) {
		m := c.Media
		switch {
		case w.UDPPortMin != 0 || w.UDPPortMax != 0:
			v.bad("webrtc.udp_port", "set either udp_port (one shared port) or udp_port_min/udp_port_max, not both")
		case w.UDPPort >= m.RTPPortMin && w.UDPPort <= m.RTPPortMax:
			v.bad("webrtc.udp_port", "%d is inside media.rtp_port_min..rtp_port_max (%d-%d)", w.UDPPort, m.RTPPortMin, m.RTPPortMax)
		}
	}
	for i, ip := range w.NAT1To1IPs {
		if a, err := netip.ParseAddr(ip); err != nil || a.IsUnspecified() {
			v.bad(indexPath("webrtc.nat_1to1_ips", i), "must be a specific IP address, got %q", ip)
		}
	}
	if w.ICEGatherTimeout <= 0 {
		v.bad("webrtc.ice_gather_timeout", "must be a positive duration like \"2s\", got %s", w.ICEGatherTimeout)
	}
}

func (v *validator) oneOf(path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.bad(path, "must be one of %s, got %q", strings.Join(allowed, ", "), value)
}

func (v *validator) port(path string, port int) {
	v.portRange(path, port, 1)
}

func (v *validator) portRange(path string, port, lowest int) bool {
	if port < lowest || port > 65535 {
		v.bad(path, "must be between %d and 65535, got %d", lowest, port)
		return false
	}
	return true
}

// hostPort checks a required host:port listen address.
func (v *validator) hostPort(path, addr string) {
	if addr == "" {
		v.bad(path, "required, like 127.0.0.1:1234")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(path, "must be host:port, got %q", addr)
		return
	}
	if host != "" && !validHost(host) {
		v.bad(path, "host must be a host name or IP address, got %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		v.bad(path, "port must be between 1 and 65535, got %q", port)
	}
}

// pattern checks a number pattern: "re:<regex>" or a glob of a leading '+',
// digits, '*' and '?' (the syntax signalling.Policy accepts).
func (v *validator) pattern(path, p string) {
	if _, err := signalling.CompileNumberPattern(p); err != nil {
		v.bad(path, "%v: a number pattern is a glob of a leading '+', digits, '*' and '?' (like \"+1*\") or \"re:<regex>\", got %q", err, p)
	}
}

// validHost accepts a DNS host name or an IP address.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if !hostLabelRe.MatchString(l) {
			return false
		}
	}
	return true
}

// validServerName accepts a Matrix server name: host[:port], IPv6 in brackets.
func validServerName(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || (port == "" && end+1 != len(s)) {
			return false
		}
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
		if !validHost(host) {
			return false
		}
	} else if !validHost(host) {
		return false
	}
	if port != "" || strings.HasSuffix(s, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// validUserID accepts "@localpart:server" with a non-empty localpart.
func validUserID(s string) bool {
	local, server, ok := strings.Cut(strings.TrimPrefix(s, "@"), ":")
	return strings.HasPrefix(s, "@") && ok && local != "" && validServerName(server)
}

// placeholderMarkers are substrings of the example's values that must be replaced.
var placeholderMarkers = []string{"change_me", "example.org", "example.com", "example.net"}

func isPlaceholder(s string) bool {
	low := strings.ToLower(s)
	for _, m := range placeholderMarkers {
		if strings.Contains(low, m) {
			return true
		}
	}
	return false
}

// checkPlaceholders reports every string left at an example placeholder.
func checkPlaceholders(v *validator, val reflect.Value, path string, secret bool) {
	const msg = "still set to a placeholder from the example config; set a real value"
	switch val.Kind() {
	case reflect.String:
		if isPlaceholder(val.String()) {
			if secret {
				v.bad(path, "%s", msg)
			} else {
				v.bad(path, "%q is %s", val.String(), msg)
			}
		}
	case reflect.Struct:
		t := val.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" {
				continue
			}
			checkPlaceholders(v, val.Field(i), joinPath(path, name), f.Type == reflect.TypeFor[Secret]() || f.Type == reflect.TypeFor[DatabaseURI]())
		}
	case reflect.Slice:
		for i := range val.Len() {
			checkPlaceholders(v, val.Index(i), indexPath(path, i), secret)
		}
	case reflect.Map:
		keys := val.MapKeys()
		strKeys := make([]string, len(keys))
		for i, k := range keys {
			strKeys[i] = k.String()
		}
		slices.Sort(strKeys)
		for _, k := range strKeys {
			p := mapKeyPath(path, k)
			if isPlaceholder(k) {
				v.bad(p, "key %q is %s", k, msg)
			}
			checkPlaceholders(v, val.MapIndex(reflect.ValueOf(k)), p, secret)
		}
	}
}
