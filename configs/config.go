// Package configs holds the gateway's YAML configuration: the schema, its
// defaults, a decoder that reports unknown keys and type errors with their
// paths and lines, Validate() that reports every problem at once, the embedded
// commented example, and the helpers that turn configuration into Matrix user
// IDs, registration regexes and toll-fraud decisions.
package configs

import (
	"time"
)

// Config is the whole gateway configuration, as read from gateway.yaml.
type Config struct {
	Homeserver    HomeserverConfig    `yaml:"homeserver"`
	AppService    AppServiceConfig    `yaml:"appservice"`
	Phone         PhoneConfig         `yaml:"phone"`
	Authorization AuthorizationConfig `yaml:"authorization"`
	SIP           SIPConfig           `yaml:"sip"`
	Inbound       InboundConfig       `yaml:"inbound"`
	Media         MediaConfig         `yaml:"media"`
	WebRTC        WebRTCConfig        `yaml:"webrtc"`
	Logging       LoggingConfig       `yaml:"logging"`
	Metrics       MetricsConfig       `yaml:"metrics"`
	TURN          TURNConfig          `yaml:"turn"`
	Database      DatabaseConfig      `yaml:"database"`
	Modem         ModemConfig         `yaml:"modem"`
	Conferences   ConferencesConfig   `yaml:"conferences"`

	// lines maps a key path ("sip.trunks[0].port") to its line in the file.
	lines map[string]int
}

// HomeserverConfig says where the Matrix homeserver is.
type HomeserverConfig struct {
	// URL is the client-server API base URL, e.g. https://matrix.example.org.
	URL string `yaml:"url"`
	// Domain is the server name: the part after ':' in user IDs.
	Domain string `yaml:"domain"`
}

// AppServiceConfig describes the gateway's appservice side.
type AppServiceConfig struct {
	// Registration is the path of the registration file; relative paths are
	// resolved against the config file's directory by Load and Parse.
	Registration string `yaml:"registration"`
	// Listen is the host:port where the homeserver pushes transactions.
	Listen string `yaml:"listen"`
	// BotLocalpart is the localpart of the gateway's bot user.
	BotLocalpart string `yaml:"bot_localpart"`
	// BotDisplayname is the bot's display name.
	BotDisplayname string `yaml:"bot_displayname"`
	// GhostLocalpartTemplate builds a ghost user's localpart; {number} is
	// the E.164 number's digits without '+'.
	GhostLocalpartTemplate string `yaml:"ghost_localpart_template"`
	// GhostDisplaynameTemplate builds a ghost's display name from
	// {formatted} (human-readable number) and {number} (digits).
	GhostDisplaynameTemplate string `yaml:"ghost_displayname_template"`
}

// PhoneConfig holds numbering settings.
type PhoneConfig struct {
	// DefaultCountryCode (digits only, 1-3 digits) turns national numbers
	// into E.164.
	DefaultCountryCode string `yaml:"default_country_code"`
}

// AuthorizationConfig is the toll-fraud policy: who may dial out and where.
type AuthorizationConfig struct {
	// Users are patterns of Matrix user IDs allowed to dial out; empty
	// means nobody.
	Users []string `yaml:"users"`
	// Numbers are allowed destination patterns on E.164; empty means none.
	Numbers []string `yaml:"numbers"`
	// DenyNumbers are destination patterns refused before Numbers is looked at.
	DenyNumbers []string `yaml:"deny_numbers"`
	// MaxCallsPerUser limits concurrent outbound calls per Matrix user.
	MaxCallsPerUser int `yaml:"max_calls_per_user"`
	// MaxCalls limits concurrent calls in total.
	MaxCalls int `yaml:"max_calls"`
	// CallerIDs maps a Matrix user ID to the E.164 number presented for it.
	CallerIDs map[string]string `yaml:"caller_ids"`
	// DefaultCallerID is the E.164 number presented for users without one
	// in CallerIDs; empty means none.
	DefaultCallerID string `yaml:"default_caller_id"`
}

// SIPConfig configures the SIP user agent and its trunks.
type SIPConfig struct {
	// Listen is the local SIP address (UDP and TCP), host:port.
	Listen string `yaml:"listen"`
	// UserAgent is sent in the User-Agent header.
	UserAgent string `yaml:"user_agent"`
	// Trunks are the SIP trunks calls go out through; at least one.
	Trunks []Trunk `yaml:"trunks"`
	// Untrusted is what INVITEs from sources that are no trunk get:
	// "reject" (403) or "ignore" (no answer).
	Untrusted string `yaml:"untrusted"`
	// InviteRate limits INVITEs per second from one source address (0: off);
	// above it the gateway answers 503.
	InviteRate int `yaml:"invite_rate"`
	// InviteBurst is how many INVITEs one source may send at once.
	InviteBurst int `yaml:"invite_burst"`
}

// Trunk is one SIP trunk (a provider or a local PBX).
type Trunk struct {
	// Name identifies the trunk in logs and metrics: [a-z0-9_-]+, unique.
	Name string `yaml:"name"`
	// Host is the trunk's host name or IP address.
	Host string `yaml:"host"`
	// Port is the trunk's SIP port.
	Port int `yaml:"port"`
	// Transport is "udp" or "tcp".
	Transport string `yaml:"transport"`
	// Username is the digest authentication user; empty means none.
	Username string `yaml:"username"`
	// Password is the digest authentication password; it is never printed.
	Password Secret `yaml:"password"`
	// FromUser is the template for the From user part: {caller_id}, {localpart}.
	FromUser string `yaml:"from_user"`
	// FromDomain is the From host; empty means Host.
	FromDomain string `yaml:"from_domain"`
	// NumberFormat is how the destination is written in the Request-URI:
	// "e164", "e164_no_plus" or "national".
	NumberFormat string `yaml:"number_format"`
	// NationalPrefix is prepended to national numbers ("national" format).
	NationalPrefix string `yaml:"national_prefix"`
	// Numbers are the destination patterns this trunk serves; empty = all.
	Numbers []string `yaml:"numbers"`
	// SetupTimeout is how long to wait for a provisional response.
	SetupTimeout time.Duration `yaml:"setup_timeout"`
	// RingTimeout is how long to wait for an answer.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// InboundSourceCIDRs are the networks calls from this trunk come from;
	// empty means the trunk's host when it is an IP address.
	InboundSourceCIDRs []string `yaml:"inbound_sources"`
	// InboundUsername and InboundPassword are the digest credentials the
	// trunk must present on its INVITEs; empty means none are asked.
	InboundUsername string `yaml:"inbound_username"`
	InboundPassword Secret `yaml:"inbound_password"`
	// Register makes the gateway register with the trunk (as a SIP client
	// with username/password) so the trunk sends it calls.
	Register bool `yaml:"register"`
	// RegisterUser is the address-of-record user; empty means username.
	RegisterUser string `yaml:"register_user"`
	// RegisterExpires is the binding lifetime asked for.
	RegisterExpires time.Duration `yaml:"register_expires"`
}

// MediaConfig configures RTP toward the trunks and the Opus encoder.
type MediaConfig struct {
	// RTPListenIP is the local IP RTP sockets bind to.
	RTPListenIP string `yaml:"rtp_listen_ip"`
	// RTPAdvertiseIP is the address written in SDP toward trunks; empty
	// means derived, see Config.RTPAdvertiseAddr.
	RTPAdvertiseIP string `yaml:"rtp_advertise_ip"`
	// RTPPortMin is the lowest RTP port (even).
	RTPPortMin int `yaml:"rtp_port_min"`
	// RTPPortMax is the highest RTP port.
	RTPPortMax int `yaml:"rtp_port_max"`
	// Codecs is the codec preference order toward trunks: PCMU, PCMA.
	Codecs []string `yaml:"codecs"`
	// OpusComplexity is the Opus encoder complexity, 0-10.
	OpusComplexity int `yaml:"opus_complexity"`
	// OpusBitrate is the Opus encoder bitrate in bit/s, 6000-510000.
	OpusBitrate int `yaml:"opus_bitrate"`
	// DeadMediaTimeout ends a bridged call (cause media_failed) when a leg
	// sends no RTP for this long; 0 disables the check. Default 30s.
	DeadMediaTimeout time.Duration `yaml:"dead_media_timeout"`
}

// WebRTCConfig configures the gateway's own WebRTC peers.
type WebRTCConfig struct {
	// ICEServers are STUN/TURN servers given to the gateway's peers.
	ICEServers []ICEServer `yaml:"ice_servers"`
	// UDPPortMin is the lowest ICE UDP port; 0 with UDPPortMax 0 = any.
	UDPPortMin int `yaml:"udp_port_min"`
	// UDPPortMax is the highest ICE UDP port; 0 with UDPPortMin 0 = any.
	UDPPortMax int `yaml:"udp_port_max"`
	// NAT1To1IPs are public IPs advertised as host candidates.
	NAT1To1IPs []string `yaml:"nat_1to1_ips"`
	// IncludeLoopbackCandidates offers loopback candidates (tests only).
	IncludeLoopbackCandidates bool `yaml:"include_loopback_candidates"`
	// ICEGatherTimeout bounds ICE candidate gathering.
	ICEGatherTimeout time.Duration `yaml:"ice_gather_timeout"`
	// UDPPort, when not 0, is the one UDP port all WebRTC calls share (ICE
	// UDP mux); udp_port_min/max are then unused. Default 0.
	UDPPort int `yaml:"udp_port"`
}

// ICEServer is one STUN or TURN server.
type ICEServer struct {
	// URLs are stun:, stuns:, turn: or turns: URLs.
	URLs []string `yaml:"urls"`
	// Username is the TURN user name.
	Username string `yaml:"username"`
	// Credential is the TURN password; it is never printed.
	Credential Secret `yaml:"credential"`
}

// LoggingConfig configures the logger.
type LoggingConfig struct {
	// Level is one of debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is "console" or "json".
	Format string `yaml:"format"`
}

// MetricsConfig configures the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the host:port for /metrics; empty turns metrics off.
	Listen string `yaml:"listen"`
}

// Defaults returns a Config holding every default value. It has no trunks
// and no homeserver, so it does not validate as is.
func Defaults() *Config {
	return &Config{
		AppService: AppServiceConfig{
			Registration:             "registration.yaml",
			Listen:                   "127.0.0.1:29330",
			BotLocalpart:             "pstn",
			BotDisplayname:           "Phone gateway",
			GhostLocalpartTemplate:   "pstn_{number}",
			GhostDisplaynameTemplate: "{formatted}",
		},
		Phone: PhoneConfig{DefaultCountryCode: "1"},
		Authorization: AuthorizationConfig{
			MaxCallsPerUser: 2,
			MaxCalls:        100,
		},
		SIP: SIPConfig{
			Listen:      "127.0.0.1:5070",
			UserAgent:   "matrix-gateway",
			Untrusted:   "reject",
			InviteRate:  5,
			InviteBurst: 20,
		},
		Inbound: InboundConfig{RingTimeout: 60 * time.Second},
		Media: MediaConfig{
			RTPListenIP:      "0.0.0.0",
			RTPPortMin:       20000,
			RTPPortMax:       29999,
			Codecs:           []string{"PCMU", "PCMA"},
			OpusComplexity:   5,
			OpusBitrate:      24000,
			DeadMediaTimeout: 30 * time.Second,
		},
		WebRTC: WebRTCConfig{
			ICEGatherTimeout: 2 * time.Second,
		},
		Logging:     LoggingConfig{Level: "info", Format: "console"},
		TURN:        TURNDefaults(),
		Database:    DatabaseConfig{Type: "sqlite", URI: "gateway.db"},
		Modem:       ModemDefaults(),
		Conferences: ConferencesDefaults(),
	}
}

// TrunkDefaults returns a Trunk holding the per-trunk defaults; every entry
// of sip.trunks starts from it.
func TrunkDefaults() Trunk {
	return Trunk{
		Port:            5060,
		Transport:       "udp",
		FromUser:        "{caller_id}",
		NumberFormat:    "e164",
		NationalPrefix:  "0",
		SetupTimeout:    8 * time.Second,
		RingTimeout:     60 * time.Second,
		RegisterExpires: time.Hour,
	}
}

// setDefaults fills a freshly created trunk entry before it is decoded.
func (t *Trunk) setDefaults() { *t = TrunkDefaults() }

// defaulter is implemented by list elements that start from defaults.
type defaulter interface{ setDefaults() }

// Secret is a string that is never printed: fmt and JSON show "***".
type Secret string

// String returns "***" for a non-empty secret, "" otherwise.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// GoString keeps %#v from revealing the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalJSON keeps structured loggers from revealing the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Reveal returns the secret's value, for the code that must send it.
func (s Secret) Reveal() string { return string(s) }
