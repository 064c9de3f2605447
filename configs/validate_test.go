package configs

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidationRules(t *testing.T) {
	type mut = func(c *Config)
	tr := func(f func(t *Trunk)) mut { return func(c *Config) { f(&c.SIP.Trunks[0]) } }
	cases := []struct {
		name   string
		mutate mut
		path   string
		msg    string
	}{
		{"url required", func(c *Config) { c.Homeserver.URL = "" }, "homeserver.url", "required"},
		{"url scheme", func(c *Config) { c.Homeserver.URL = "ftp://hs.test" }, "homeserver.url", "http:// or https://"},
		{"url without host", func(c *Config) { c.Homeserver.URL = "https://" }, "homeserver.url", "with a host"},
		{"url not a url", func(c *Config) { c.Homeserver.URL = "matrix.test" }, "homeserver.url", "http:// or https://"},
		{"url query", func(c *Config) { c.Homeserver.URL = "https://hs.test/?a=b" }, "homeserver.url", "query"},
		{"domain required", func(c *Config) { c.Homeserver.Domain = "" }, "homeserver.domain", "required"},
		{"domain syntax", func(c *Config) { c.Homeserver.Domain = "bad domain!" }, "homeserver.domain", "server name"},
		{"domain port", func(c *Config) { c.Homeserver.Domain = "hs.test:99999" }, "homeserver.domain", "server name"},
		{"domain label", func(c *Config) { c.Homeserver.Domain = "-hs.test" }, "homeserver.domain", "server name"},
		{"registration required", func(c *Config) { c.AppService.Registration = "" }, "appservice.registration", "required"},
		{"as listen required", func(c *Config) { c.AppService.Listen = "" }, "appservice.listen", "required"},
		{"as listen host:port", func(c *Config) { c.AppService.Listen = "29330" }, "appservice.listen", "host:port"},
		{"as listen port", func(c *Config) { c.AppService.Listen = "127.0.0.1:0" }, "appservice.listen", "between 1 and 65535"},
		{"bot localpart required", func(c *Config) { c.AppService.BotLocalpart = "" }, "appservice.bot_localpart", "required"},
		{"bot localpart syntax", func(c *Config) { c.AppService.BotLocalpart = "Bot" }, "appservice.bot_localpart", "a-z"},
		{"ghost template no number", func(c *Config) { c.AppService.GhostLocalpartTemplate = "pstn_" }, "appservice.ghost_localpart_template", "exactly once"},
		{"ghost template twice", func(c *Config) { c.AppService.GhostLocalpartTemplate = "{number}_{number}" }, "appservice.ghost_localpart_template", "exactly once"},
		{"ghost template unknown", func(c *Config) { c.AppService.GhostLocalpartTemplate = "{country}_{number}" }, "appservice.ghost_localpart_template", "unknown placeholder {country}"},
		{"ghost template localpart", func(c *Config) { c.AppService.GhostLocalpartTemplate = "PSTN {number}" }, "appservice.ghost_localpart_template", "not a valid localpart"},
		{"ghost template too long", func(c *Config) { c.AppService.GhostLocalpartTemplate = strings.Repeat("a", 240) + "{number}" }, "appservice.ghost_localpart_template", "too long"},
		{"ghost template catches bot", func(c *Config) { c.AppService.BotLocalpart = "pstn_1" }, "appservice.ghost_localpart_template", "looks like a ghost"},
		{"displayname required", func(c *Config) { c.AppService.GhostDisplaynameTemplate = " " }, "appservice.ghost_displayname_template", "required"},
		{"displayname unknown", func(c *Config) { c.AppService.GhostDisplaynameTemplate = "{name}" }, "appservice.ghost_displayname_template", "unknown placeholder {name}"},
		{"country code empty", func(c *Config) { c.Phone.DefaultCountryCode = "" }, "phone.default_country_code", "1 to 3 digits"},
		{"country code plus", func(c *Config) { c.Phone.DefaultCountryCode = "+44" }, "phone.default_country_code", "1 to 3 digits"},
		{"country code long", func(c *Config) { c.Phone.DefaultCountryCode = "1234" }, "phone.default_country_code", "1 to 3 digits"},
		{"country code zero", func(c *Config) { c.Phone.DefaultCountryCode = "0" }, "phone.default_country_code", "1 to 3 digits"},
		{"user glob no @", func(c *Config) { c.Authorization.Users = []string{"alice:hs.test"} }, "authorization.users[0]", "starting with '@'"},
		{"user glob no server", func(c *Config) { c.Authorization.Users = []string{"@*"} }, "authorization.users[0]", "user ID glob"},
		{"user glob space", func(c *Config) { c.Authorization.Users = []string{"@a b:hs.test"} }, "authorization.users[0]", "no spaces"},
		{"number glob chars", func(c *Config) { c.Authorization.Numbers = []string{"+1 555*"} }, "authorization.numbers[0]", "glob of a leading '+'"},
		{"number glob inner plus", func(c *Config) { c.Authorization.Numbers = []string{"1+*"} }, "authorization.numbers[0]", "glob of a leading '+'"},
		{"number regex", func(c *Config) { c.Authorization.Numbers = []string{"re:(+1"} }, "authorization.numbers[0]", "invalid regular expression"},
		{"number empty regex", func(c *Config) { c.Authorization.Numbers = []string{"re:"} }, "authorization.numbers[0]", "empty regular expression"},
		{"number empty", func(c *Config) { c.Authorization.Numbers = []string{"+1*", ""} }, "authorization.numbers[1]", "empty pattern"},
		{"deny regex", func(c *Config) { c.Authorization.DenyNumbers = []string{"re:[9"} }, "authorization.deny_numbers[0]", "invalid regular expression"},
		{"max per user", func(c *Config) { c.Authorization.MaxCallsPerUser = 0 }, "authorization.max_calls_per_user", "at least 1"},
		{"max calls", func(c *Config) { c.Authorization.MaxCalls = -1 }, "authorization.max_calls", "at least 1"},
		{"caller id key", func(c *Config) { c.Authorization.CallerIDs = map[string]string{"alice": "+15550100100"} }, `authorization.caller_ids["alice"]`, "Matrix user ID"},
		{"caller id value", func(c *Config) { c.Authorization.CallerIDs = map[string]string{"@a:hs.test": "5550100"} }, `authorization.caller_ids["@a:hs.test"]`, "E.164"},
		{"caller id leading zero", func(c *Config) { c.Authorization.CallerIDs = map[string]string{"@a:hs.test": "+0555"} }, `authorization.caller_ids["@a:hs.test"]`, "E.164"},
		{"caller id too long", func(c *Config) { c.Authorization.CallerIDs = map[string]string{"@a:hs.test": "+1234567890123456"} }, `authorization.caller_ids["@a:hs.test"]`, "E.164"},
		{"default caller id", func(c *Config) { c.Authorization.DefaultCallerID = "15550100" }, "authorization.default_caller_id", "E.164"},
		{"sip listen", func(c *Config) { c.SIP.Listen = "localhost" }, "sip.listen", "host:port"},
		{"user agent", func(c *Config) { c.SIP.UserAgent = "" }, "sip.user_agent", "required"},
		{"no trunks", func(c *Config) { c.SIP.Trunks = nil }, "sip.trunks", "at least one trunk"},
		{"trunk name required", tr(func(t *Trunk) { t.Name = "" }), "sip.trunks[0].name", "required"},
		{"trunk name syntax", tr(func(t *Trunk) { t.Name = "Main Trunk" }), "sip.trunks[0].name", "a-z 0-9 _ -"},
		{"trunk name unique", func(c *Config) { c.SIP.Trunks = append(c.SIP.Trunks, c.SIP.Trunks[0]) }, "sip.trunks[1].name", "duplicate trunk name"},
		{"trunk host required", tr(func(t *Trunk) { t.Host = "" }), "sip.trunks[0].host", "required"},
		{"trunk host syntax", tr(func(t *Trunk) { t.Host = "sip provider" }), "sip.trunks[0].host", "host name or IP"},
		{"trunk port low", tr(func(t *Trunk) { t.Port = 0 }), "sip.trunks[0].port", "must be between 1 and 65535, got 0"},
		{"trunk port high", tr(func(t *Trunk) { t.Port = 70000 }), "sip.trunks[0].port", "must be between 1 and 65535, got 70000"},
		{"trunk transport", tr(func(t *Trunk) { t.Transport = "tls" }), "sip.trunks[0].transport", "udp, tcp"},
		{"trunk password without user", tr(func(t *Trunk) { t.Password = "pw" }), "sip.trunks[0].username", "required when a password"},
		{"trunk from_user empty", tr(func(t *Trunk) { t.FromUser = "" }), "sip.trunks[0].from_user", "required"},
		{"trunk from_user placeholder", tr(func(t *Trunk) { t.FromUser = "{number}" }), "sip.trunks[0].from_user", "unknown placeholder {number}"},
		{"trunk from_domain", tr(func(t *Trunk) { t.FromDomain = "a b" }), "sip.trunks[0].from_domain", "host name or IP"},
		{"trunk number format", tr(func(t *Trunk) { t.NumberFormat = "digits" }), "sip.trunks[0].number_format", "e164, e164_no_plus, national"},
		{"trunk national prefix", tr(func(t *Trunk) { t.NationalPrefix = "0x" }), "sip.trunks[0].national_prefix", "digits only"},
		{"trunk numbers", tr(func(t *Trunk) { t.Numbers = []string{"+44*", "abc"} }), "sip.trunks[0].numbers[1]", "glob"},
		{"trunk setup timeout", tr(func(t *Trunk) { t.SetupTimeout = 0 }), "sip.trunks[0].setup_timeout", "positive duration"},
		{"trunk ring timeout", tr(func(t *Trunk) { t.RingTimeout = -time.Second }), "sip.trunks[0].ring_timeout", "positive duration"},
		{"rtp listen ip", func(c *Config) { c.Media.RTPListenIP = "localhost" }, "media.rtp_listen_ip", "IP address"},
		{"rtp advertise ip", func(c *Config) { c.Media.RTPAdvertiseIP = "gw.test" }, "media.rtp_advertise_ip", "specific IP"},
		{"rtp advertise unspecified", func(c *Config) { c.Media.RTPAdvertiseIP = "0.0.0.0" }, "media.rtp_advertise_ip", "specific IP"},
		{"rtp advertise needed", func(c *Config) { c.Media.RTPListenIP = "0.0.0.0"; c.SIP.Listen = ":5070" }, "media.rtp_advertise_ip", "required when rtp_listen_ip is unspecified"},
		{"rtp port min", func(c *Config) { c.Media.RTPPortMin = 1000 }, "media.rtp_port_min", "between 1024 and 65535"},
		{"rtp port max", func(c *Config) { c.Media.RTPPortMax = 70000 }, "media.rtp_port_max", "between 1024 and 65535"},
		{"rtp port odd", func(c *Config) { c.Media.RTPPortMin = 20001 }, "media.rtp_port_min", "even"},
		{"rtp port order", func(c *Config) { c.Media.RTPPortMin, c.Media.RTPPortMax = 30000, 30000 }, "media.rtp_port_max", "greater than rtp_port_min"},
		{"codecs empty", func(c *Config) { c.Media.Codecs = nil }, "media.codecs", "at least one codec"},
		{"codec unknown", func(c *Config) { c.Media.Codecs = []string{"PCMU", "G729"} }, "media.codecs[1]", "PCMU, PCMA, G722 or opus"},
		{"codec twice, other case", func(c *Config) { c.Media.Codecs = []string{"opus", "OPUS"} }, "media.codecs[1]", "twice"},
		{"codec twice", func(c *Config) { c.Media.Codecs = []string{"PCMA", "PCMA"} }, "media.codecs[1]", "twice"},
		{"opus complexity", func(c *Config) { c.Media.OpusComplexity = 11 }, "media.opus_complexity", "between 0 and 10"},
		{"opus complexity negative", func(c *Config) { c.Media.OpusComplexity = -1 }, "media.opus_complexity", "between 0 and 10"},
		{"opus bitrate low", func(c *Config) { c.Media.OpusBitrate = 5999 }, "media.opus_bitrate", "between 6000 and 510000"},
		{"opus bitrate high", func(c *Config) { c.Media.OpusBitrate = 510001 }, "media.opus_bitrate", "between 6000 and 510000"},
		{"ice urls empty", func(c *Config) { c.WebRTC.ICEServers = []ICEServer{{}} }, "webrtc.ice_servers[0].urls", "at least one URL"},
		{"ice url scheme", func(c *Config) { c.WebRTC.ICEServers = []ICEServer{{URLs: []string{"http://x"}}} }, "webrtc.ice_servers[0].urls[0]", "stun:, stuns:, turn: or turns:"},
		{"turn needs credential", func(c *Config) { c.WebRTC.ICEServers = []ICEServer{{URLs: []string{"turn:x:3478"}, Username: "u"}} }, "webrtc.ice_servers[0].urls[0]", "username and credential"},
		{"webrtc port half set", func(c *Config) { c.WebRTC.UDPPortMin = 40000 }, "webrtc.udp_port_max", "between 1 and 65535, got 0"},
		{"webrtc port order", func(c *Config) { c.WebRTC.UDPPortMin, c.WebRTC.UDPPortMax = 41000, 40000 }, "webrtc.udp_port_max", "less than udp_port_min"},
		{"webrtc port overlap", func(c *Config) { c.WebRTC.UDPPortMin, c.WebRTC.UDPPortMax = 29000, 31000 }, "webrtc.udp_port_min", "overlaps"},
		{"webrtc port high", func(c *Config) { c.WebRTC.UDPPortMin, c.WebRTC.UDPPortMax = 40000, 70000 }, "webrtc.udp_port_max", "between 1 and 65535"},
		{"nat ip", func(c *Config) { c.WebRTC.NAT1To1IPs = []string{"203.0.113.1", "gw"} }, "webrtc.nat_1to1_ips[1]", "specific IP"},
		{"gather timeout", func(c *Config) { c.WebRTC.ICEGatherTimeout = 0 }, "webrtc.ice_gather_timeout", "positive duration"},
		{"log level", func(c *Config) { c.Logging.Level = "verbose" }, "logging.level", "debug, info, warn, error"},
		{"log format", func(c *Config) { c.Logging.Format = "xml" }, "logging.format", "console, json"},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "9090" }, "metrics.listen", "host:port"},
		{"placeholder host", tr(func(t *Trunk) { t.Host = "sip.example.org" }), "sip.trunks[0].host", "placeholder"},
		{"placeholder user", tr(func(t *Trunk) { t.Username = "CHANGE_ME" }), "sip.trunks[0].username", "placeholder"},
		{"placeholder map key", func(c *Config) { c.Authorization.CallerIDs = map[string]string{"@bob:example.com": "+15550100100"} }, `authorization.caller_ids["@bob:example.com"]`, "placeholder"},
		{"placeholder list", func(c *Config) { c.WebRTC.ICEServers = []ICEServer{{URLs: []string{"stun:stun.example.net"}}} }, "webrtc.ice_servers[0].urls[0]", "placeholder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustValid(t)
			c.mutate(cfg)
			problems := problemsOf(t, cfg.Validate())
			p, ok := findProblem(problems, c.path, c.msg)
			if !ok {
				t.Fatalf("want %s: ...%s..., got %v", c.path, c.msg, problems)
			}
			// A problem in a section the file has carries the line of the
			// key or of its nearest ancestor in the file.
			section, _, _ := strings.Cut(c.path, ".")
			if strings.Contains(validYAML, "\n"+section+":\n") || strings.HasPrefix(validYAML, section+":") {
				if p.Line == 0 {
					t.Errorf("no line number for %v", p)
				}
			} else if p.Line != 0 {
				t.Errorf("line %d for a key the file does not have: %v", p.Line, p)
			}
		})
	}
}

func TestValidVariants(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"domain with port", func(c *Config) { c.Homeserver.Domain = "hs.test:8448" }},
		{"domain ipv6", func(c *Config) { c.Homeserver.Domain = "[::1]:8448" }},
		{"domain ipv4", func(c *Config) { c.Homeserver.Domain = "127.0.0.1" }},
		{"http url with path", func(c *Config) { c.Homeserver.URL = "http://127.0.0.1:8008/matrix/" }},
		{"ghost template suffix", func(c *Config) { c.AppService.GhostLocalpartTemplate = "tel.{number}.pstn" }},
		{"number regex", func(c *Config) { c.Authorization.Numbers = []string{`re:\+1(555|800)\d+`, "+44??????????"} }},
		{"empty users and numbers", func(c *Config) { c.Authorization.Users, c.Authorization.Numbers = nil, nil }},
		{"advertise from sip listen", func(c *Config) { c.Media.RTPListenIP = "0.0.0.0"; c.SIP.Listen = "192.0.2.10:5070" }},
		{"explicit advertise", func(c *Config) { c.Media.RTPListenIP = "::"; c.Media.RTPAdvertiseIP = "2001:db8::1" }},
		{"webrtc range", func(c *Config) { c.WebRTC.UDPPortMin, c.WebRTC.UDPPortMax = 40000, 40100 }},
		{"turn with credential", func(c *Config) {
			c.WebRTC.ICEServers = []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.1"}, Username: "u", Credential: "p"}}
		}},
		{"tcp national trunk", func(c *Config) {
			t := &c.SIP.Trunks[0]
			t.Transport, t.NumberFormat, t.NationalPrefix, t.FromUser = "tcp", "national", "", "{localpart}-{caller_id}"
		}},
		{"json logs and metrics", func(c *Config) {
			c.Logging.Format, c.Logging.Level, c.Metrics.Listen = "json", "debug", "127.0.0.1:9090"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustValid(t)
			c.mutate(cfg)
			if err := cfg.Validate(); err != nil {
				t.Errorf("unexpected problems: %v", err)
			}
		})
	}
}

func TestDecodeProblemSuppressesValidationAtSamePath(t *testing.T) {
	_, err := Parse([]byte(withKeys("media:\n  rtp_port_min: lots\n")), "")
	problems := problemsOf(t, err)
	if len(problems) != 1 {
		t.Errorf("want only the type error, got %v", problems)
	}
}

func TestRTPAdvertiseAddr(t *testing.T) {
	cases := []struct {
		listen, advertise, sip string
		want                   string
	}{
		{"127.0.0.1", "", "127.0.0.1:5070", "127.0.0.1"},
		{"0.0.0.0", "", "192.0.2.1:5070", "192.0.2.1"},
		{"0.0.0.0", "203.0.113.5", "192.0.2.1:5070", "203.0.113.5"},
		{"192.0.2.7", "", "0.0.0.0:5070", "192.0.2.7"},
		{"0.0.0.0", "", "0.0.0.0:5070", ""},
		{"0.0.0.0", "", "sip.gw.test:5070", ""},
	}
	for _, c := range cases {
		cfg := Defaults()
		cfg.Media.RTPListenIP, cfg.Media.RTPAdvertiseIP, cfg.SIP.Listen = c.listen, c.advertise, c.sip
		got, ok := cfg.RTPAdvertiseAddr()
		if c.want == "" {
			if ok {
				t.Errorf("%+v: got %s, want none", c, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(c.want) {
			t.Errorf("%+v: got %s %v, want %s", c, got, ok, c.want)
		}
	}
}

func TestNotes(t *testing.T) {
	cfg := mustValid(t)
	if n := cfg.Notes(); len(n) != 0 {
		t.Errorf("valid base config has notes: %v", n)
	}
	cfg.Authorization.Users = nil
	cfg.Authorization.Numbers = []string{"*"}
	cfg.WebRTC.IncludeLoopbackCandidates = true
	notes := strings.Join(cfg.Notes(), "\n")
	for _, want := range []string{"nobody may dial out", "allows every destination", "tests only"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q: %s", want, notes)
		}
	}
	cfg.Authorization.Numbers = nil
	if !strings.Contains(strings.Join(cfg.Notes(), "\n"), "no destination may be dialled") {
		t.Error("empty numbers not noted")
	}
}
