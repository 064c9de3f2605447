package main

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/sip"
)

// This file adapts configuration and packages to each other; no call logic.

func parseIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.IPv4Unspecified(), nil
	}
	return netip.ParseAddr(s)
}

func opusOptions(m configs.MediaConfig) opus.Options {
	return opus.Options{Complexity: m.OpusComplexity, Bitrate: m.OpusBitrate, FEC: true}
}

func opusCodec(o opus.Options) codecs.Codec { return codecs.OpusWith(o) }

// sipAdvertiseIP is the IP put in Via/Contact: the SIP listen host when it is
// a specific address, else the RTP advertise address.
func sipAdvertiseIP(cfg *configs.Config) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(cfg.SIP.Listen); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			return ip, true
		}
	}
	return cfg.RTPAdvertiseAddr()
}

// sipTrunk maps a configured trunk onto the SIP package's trunk.
func sipTrunk(t *configs.Trunk, cfg *configs.Config) sip.Trunk {
	return sip.Trunk{
		Name:           t.Name,
		Host:           t.Host,
		Port:           t.Port,
		Transport:      t.Transport,
		Username:       t.Username,
		Password:       t.Password.Reveal(),
		FromUser:       t.FromUser,
		FromDomain:     t.FromDomain,
		NumberFormat:   sip.NumberFormat(t.NumberFormat),
		NationalPrefix: t.NationalPrefix,
		CountryCode:    cfg.Phone.DefaultCountryCode,
		Codecs:         cfg.Media.Codecs,
		SetupTimeout:   t.SetupTimeout,
		RingTimeout:    t.RingTimeout,
	}
}

// rtpMediaFactory gives each SIP leg a UDP RTP session on a port from the
// configured range; the codec is chosen when the far side answers.
type rtpMediaFactory struct {
	udp       media.UDPConfig
	deadMedia time.Duration // media.dead_media_timeout
	opus      opus.Options  // media.opus_* for trunks that speak Opus
}

func (f *rtpMediaFactory) NewSession() (sip.MediaSession, error) {
	s, err := media.NewUDPSession(f.udp)
	if err != nil {
		return nil, err
	}
	return &rtpMediaSession{udp: s, deadMedia: f.deadMedia, opus: f.opus}, nil
}

// rtpMediaSession implements sip.MediaSession over media.UDPSession and
// media.RTPEndpoint.
type rtpMediaSession struct {
	udp       *media.UDPSession
	ep        *media.RTPEndpoint
	rtcp      *media.RTCPSession // SR/RR on the RTCP port, started with the endpoint
	deadMedia time.Duration
	opus      opus.Options
}

func (s *rtpMediaSession) LocalAddr() netip.AddrPort { return s.udp.AdvertisedAddr() }

func (s *rtpMediaSession) Start(remote netip.AddrPort, codec string, pt, dtmfPT uint8) error {
	c, err := codecs.Lookup(codec)
	if err != nil {
		return err
	}
	if c.Name == codecs.Opus.Name {
		c = codecs.OpusWith(s.opus) // the configured encoder settings
	}
	if remote.IsValid() {
		s.udp.SetRemote(remote)
	}
	if s.ep != nil {
		return fmt.Errorf("media session already started")
	}
	s.ep, err = media.NewRTPEndpoint(media.RTPConfig{Codec: c, PayloadType: pt, EventPayloadType: dtmfPT, Reader: s.udp, Writer: s.udp,
		DeadMediaTimeout: s.deadMedia})
	if err != nil {
		return err
	}
	s.rtcp, err = media.StartRTCP(media.RTCPConfig{Session: s.udp, Endpoint: s.ep})
	return err
}

func (s *rtpMediaSession) Endpoint() media.Endpoint {
	if s.ep == nil {
		return nil
	}
	return s.ep
}

func (s *rtpMediaSession) Close() error {
	if s.rtcp != nil {
		_ = s.rtcp.Close()
	}
	if s.ep != nil {
		_ = s.ep.Close()
	}
	return s.udp.Close()
}
