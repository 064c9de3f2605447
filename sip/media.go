package sip

import (
	"net/netip"

	"github.com/matrix-gateway/gateway/media"
)

// MediaFactory allocates one RTP session per SIP leg.
type MediaFactory interface {
	// NewSession binds a local RTP socket and returns the session; it does
	// not send anything until Start.
	NewSession() (MediaSession, error)
}

// MediaSession is one leg's RTP session, as the SIP leg needs it. A thin
// adapter over the media package's UDP RTP session satisfies it.
type MediaSession interface {
	// LocalAddr is the address advertised in SDP (c= IP and m= port).
	LocalAddr() netip.AddrPort
	// Start begins sending to and receiving from remote with the chosen
	// codec (encoding name, e.g. "PCMU") and payload type; dtmfPT is the
	// telephone-event payload type, 0 when the far side accepted none.
	// An invalid (zero) remote means the far side wants no audio from us
	// (hold, sendonly, inactive): the session then only receives.
	Start(remote netip.AddrPort, codec string, pt uint8, dtmfPT uint8) error
	// Endpoint returns the session's audio endpoint, valid after Start.
	Endpoint() media.Endpoint
	// Close releases the socket. It is idempotent.
	Close() error
}
