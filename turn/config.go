package turn

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Config configures a TURN server. The zero value of each field takes the
// default documented on it; New validates before it listens.
type Config struct {
	// Realm is the long-term credential realm (RFC 8489 section 9.2); required.
	Realm string
	// ListenIP is where the UDP and TCP listeners bind; default 0.0.0.0.
	ListenIP netip.Addr
	// Port is the UDP (and TCP) listening port; 0 picks a free port (tests).
	Port int
	// UDPListeners is the number of UDP sockets sharing Port through
	// SO_REUSEPORT, each with its own read loop; default runtime.NumCPU().
	UDPListeners int
	// TCP also listens for TURN over TCP on Port.
	TCP bool
	// TLSPort is the TURN over TLS (turns:) port; 0 = none. Needs TLS.
	TLSPort int
	// TLS is the certificate configuration for TLSPort; nil = no TLS.
	TLS *tls.Config
	// RelayIP is the local address relay sockets bind to; default ListenIP.
	RelayIP netip.Addr
	// ExternalIP is the relay address announced to clients when the server
	// sits behind a 1:1 NAT; default RelayIP, which must then be specific.
	ExternalIP netip.Addr
	// RelayPortMin and RelayPortMax bound relay ports (inclusive); keep them
	// out of the kernel's ephemeral range (32768-60999 on Linux). Default 61000-65535.
	RelayPortMin, RelayPortMax int
	// Secret is the TURN REST shared secret (turn_shared_secret of the
	// homeserver); empty = no REST credentials.
	Secret string
	// StaticUsers maps user names to passwords, for tests and for clients
	// without a homeserver.
	StaticUsers map[string]string
	// QuotaExempt are user names UserQuota does not apply to (the gateway's
	// own peers); TotalQuota still does.
	QuotaExempt []string
	// DefaultLifetime is an allocation's lifetime when the client asks for
	// none; default 10 min.
	DefaultLifetime time.Duration
	// MaxLifetime caps the lifetime a client may ask for in Allocate and
	// Refresh; default 1 h.
	MaxLifetime time.Duration
	// UserQuota caps concurrent allocations per user (486); 0 = no cap.
	UserQuota int
	// TotalQuota caps concurrent allocations in total (508); 0 = no cap.
	TotalQuota int
	// MaxBitrate caps each allocation's relayed traffic per direction in
	// bit/s; packets over it are dropped. 0 = no cap.
	MaxBitrate int
	// AllowedPeers are peer ranges always allowed: they override DeniedPeers
	// and the default denials (coturn's allowed-peer-ip).
	AllowedPeers []netip.Prefix
	// DeniedPeers are peer ranges refused (403) besides the default ones:
	// loopback, private, link-local, multicast and the server's own addresses.
	DeniedPeers []netip.Prefix
	// ReadBuffer is the SO_RCVBUF of each UDP listener in bytes; default 4 MiB.
	ReadBuffer int
	// RelayReadBuffer is the SO_RCVBUF of each relay socket; default 256 KiB.
	RelayReadBuffer int
	// Registerer receives the server's metrics; nil = not registered.
	Registerer prometheus.Registerer
	// Log receives lifecycle messages (never one per packet).
	Log zerolog.Logger
	// Now is the clock for credential expiry; default time.Now.
	Now func() time.Time
	// GoroutineRelays reads the relay sockets of UDP allocations with one
	// goroutine per allocation (pion's way) instead of the epoll loop that
	// serves them all (Linux only; elsewhere relays always use goroutines).
	// The loop costs less CPU per relayed packet; default false (the loop).
	GoroutineRelays bool
}

// Defaults for Config fields left at zero.
const (
	DefaultPort            = 3478
	DefaultRelayPortMin    = 61000
	DefaultRelayPortMax    = 65535
	DefaultReadBuffer      = 4 << 20
	DefaultRelayReadBuffer = 256 << 10
	DefaultLifetime        = 10 * time.Minute
	DefaultMaxLifetime     = time.Hour
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if !c.ListenIP.IsValid() {
		c.ListenIP = netip.IPv4Unspecified()
	}
	if c.UDPListeners == 0 {
		c.UDPListeners = runtime.NumCPU()
	}
	if !c.RelayIP.IsValid() {
		c.RelayIP = c.ListenIP
	}
	if !c.ExternalIP.IsValid() {
		c.ExternalIP = c.RelayIP
	}
	if c.RelayPortMin == 0 && c.RelayPortMax == 0 {
		c.RelayPortMin, c.RelayPortMax = DefaultRelayPortMin, DefaultRelayPortMax
	}
	if c.DefaultLifetime == 0 {
		c.DefaultLifetime = DefaultLifetime
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.RelayReadBuffer == 0 {
		c.RelayReadBuffer = DefaultRelayReadBuffer
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate reports the first problem of a defaulted configuration.
func (c *Config) validate() error {
	switch {
	case c.Realm == "":
		return fmt.Errorf("%w: realm is required", ErrConfig)
	case c.Secret == "" && len(c.StaticUsers) == 0:
		return fmt.Errorf("%w: a shared secret or static users are required", ErrConfig)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("%w: port %d out of range", ErrConfig, c.Port)
	case c.UDPListeners < 1 || c.UDPListeners > 256:
		return fmt.Errorf("%w: udp listeners must be 1-256, got %d", ErrConfig, c.UDPListeners)
	case c.TLSPort < 0 || c.TLSPort > 65535:
		return fmt.Errorf("%w: tls port %d out of range", ErrConfig, c.TLSPort)
	case c.TLSPort != 0 && c.TLS == nil:
		return fmt.Errorf("%w: tls port set without a certificate", ErrConfig)
	case c.ExternalIP.IsUnspecified():
		return fmt.Errorf("%w: the relay address is unspecified (%s): set a specific relay or external IP", ErrConfig, c.ExternalIP)
	case c.RelayPortMin < 1 || c.RelayPortMax > 65535 || c.RelayPortMin > c.RelayPortMax:
		return fmt.Errorf("%w: relay port range %d-%d invalid", ErrConfig, c.RelayPortMin, c.RelayPortMax)
	case c.DefaultLifetime < time.Minute || c.MaxLifetime < c.DefaultLifetime:
		return fmt.Errorf("%w: lifetimes: default %v must be >= 1m and <= max %v", ErrConfig, c.DefaultLifetime, c.MaxLifetime)
	case c.MaxLifetime > time.Hour:
		return fmt.Errorf("%w: max lifetime %v above 1h (RFC 8656 limit)", ErrConfig, c.MaxLifetime)
	case c.UserQuota < 0 || c.TotalQuota < 0 || c.MaxBitrate < 0:
		return fmt.Errorf("%w: quotas and bitrate must not be negative", ErrConfig)
	}
	return nil
}
