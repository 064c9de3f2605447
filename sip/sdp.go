package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/matrix-gateway/gateway/signalling"
)

// Codec is one audio payload format the gateway can offer on a SIP leg.
type Codec struct {
	Name        string // encoding name as in a=rtpmap, e.g. "PCMU"
	PayloadType uint8  // static RTP payload type (RFC 3551), or the dynamic one offered
	ClockRate   int    // RTP clock rate in Hz
	Channels    int    // rtpmap encoding parameters (2 for Opus, RFC 7587); 0 or 1 = none
	Fmtp        string // a=fmtp parameters offered, empty if none
}

// String returns the rtpmap form, e.g. "PCMU/8000" or "opus/48000/2".
func (c Codec) String() string {
	s := c.Name + "/" + strconv.Itoa(c.ClockRate)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(c.Channels)
	}
	return s
}

// The G.711 codecs every SIP trunk speaks (RFC 3551 section 6), G.722
// (payload type 9 with its 8000 Hz RTP clock, RFC 3551 section 4.5.2) and
// Opus (RFC 7587: always opus/48000/2, dynamic payload type).
var (
	CodecPCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	CodecPCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
	CodecG722 = Codec{Name: "G722", PayloadType: 9, ClockRate: 8000}
	CodecOpus = Codec{Name: "opus", PayloadType: 111, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}
)

// DefaultDTMFPayloadType is the dynamic payload type offered for
// telephone-event (RFC 4733).
const DefaultDTMFPayloadType uint8 = 101

// DefaultPTime is the packetisation time offered and assumed, in milliseconds.
const DefaultPTime = 20

// CodecByName returns the known codec with that encoding name (case-insensitive).
func CodecByName(name string) (Codec, bool) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "PCMU":
		return CodecPCMU, true
	case "PCMA":
		return CodecPCMA, true
	case "G722":
		return CodecG722, true
	case "OPUS":
		return CodecOpus, true
	}
	return Codec{}, false
}

// Direction is an SDP media direction attribute (RFC 3264 section 5.1),
// seen from the side that wrote the SDP.
type Direction int

// SDP media directions.
const (
	DirSendRecv Direction = iota
	DirSendOnly
	DirRecvOnly
	DirInactive
)

// String returns the attribute name, e.g. "sendrecv".
func (d Direction) String() string {
	switch d {
	case DirSendOnly:
		return "sendonly"
	case DirRecvOnly:
		return "recvonly"
	case DirInactive:
		return "inactive"
	}
	return "sendrecv"
}

// Sends reports whether the writer of the SDP sends media in this direction.
func (d Direction) Sends() bool { return d == DirSendRecv || d == DirSendOnly }

// Receives reports whether the writer of the SDP wants to receive media.
func (d Direction) Receives() bool { return d == DirSendRecv || d == DirRecvOnly }

func parseDirection(key string) (Direction, bool) {
	switch key {
	case "sendrecv":
		return DirSendRecv, true
	case "sendonly":
		return DirSendOnly, true
	case "recvonly":
		return DirRecvOnly, true
	case "inactive":
		return DirInactive, true
	}
	return 0, false
}

// SDP errors. Each SDPError wraps one of these.
var (
	ErrNoSDP         = errors.New("sip: no SDP body")
	ErrMalformedSDP  = errors.New("sip: malformed SDP")
	ErrNoCommonCodec = errors.New("sip: no common codec")
	ErrMediaRejected = errors.New("sip: audio stream rejected")
)

// SDPError describes why an SDP answer could not be used. It unwraps to one
// of ErrNoSDP, ErrMalformedSDP, ErrNoCommonCodec or ErrMediaRejected.
type SDPError struct {
	Kind   error
	Detail string
}

// Error implements error.
func (e *SDPError) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel kind.
func (e *SDPError) Unwrap() error { return e.Kind }

// Cause maps every SDP problem to signalling.CauseIncompatible (SIP 488).
func (e *SDPError) HangupCause() signalling.Cause { return signalling.CauseIncompatible }

func sdpErr(kind error, format string, args ...any) *SDPError {
	return &SDPError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Offer is the SDP offer the gateway sends in an INVITE.
type Offer struct {
	SessionID      uint64         // o= sess-id, stays the same for the dialog
	SessionVersion uint64         // o= sess-version, bumped on every change
	Addr           netip.AddrPort // advertised RTP address (c= and m= port)
	Codecs         []Codec        // audio codecs, preferred first
	DTMFPayload    uint8          // telephone-event payload type; 0 = not offered
	PTime          int            // a=ptime in ms; 0 = DefaultPTime
	Direction      Direction      // a=sendrecv unless set
}

// Marshal renders the offer as an SDP body (RFC 4566, CRLF line ends).
func (o Offer) Marshal() []byte {
	ip := o.Addr.Addr().Unmap()
	addrType := "IP4"
	if ip.Is6() {
		addrType = "IP6"
	}
	ptime := o.PTime
	if ptime <= 0 {
		ptime = DefaultPTime
	}
	var b strings.Builder
	line := func(s ...string) {
		for _, p := range s {
			b.WriteString(p)
		}
		b.WriteString("\r\n")
	}
	line("v=0")
	line("o=- ", strconv.FormatUint(o.SessionID, 10), " ", strconv.FormatUint(o.SessionVersion, 10), " IN ", addrType, " ", ip.String())
	line("s=-")
	line("c=IN ", addrType, " ", ip.String())
	line("t=0 0")
	fmts := make([]string, 0, len(o.Codecs)+1)
	for _, c := range o.Codecs {
		fmts = append(fmts, strconv.Itoa(int(c.PayloadType)))
	}
	if o.DTMFPayload != 0 {
		fmts = append(fmts, strconv.Itoa(int(o.DTMFPayload)))
	}
	line("m=audio ", strconv.Itoa(int(o.Addr.Port())), " RTP/AVP ", strings.Join(fmts, " "))
	for _, c := range o.Codecs {
		pt := strconv.Itoa(int(c.PayloadType))
		line("a=rtpmap:", pt, " ", c.String())
		if c.Fmtp != "" {
			line("a=fmtp:", pt, " ", c.Fmtp)
		}
	}
	if o.DTMFPayload != 0 {
		pt := strconv.Itoa(int(o.DTMFPayload))
		line("a=rtpmap:", pt, " telephone-event/8000")
		line("a=fmtp:", pt, " 0-16")
	}
	line("a=ptime:", strconv.Itoa(ptime))
	line("a=", o.Direction.String())
	return []byte(b.String())
}

// Answer is what the gateway takes from the far side's SDP answer.
type Answer struct {
	Codec       Codec          // the chosen codec, PayloadType as the answer numbers it
	Remote      netip.AddrPort // where to send RTP; zero when the far side wants none (c=0.0.0.0)
	DTMFPayload uint8          // telephone-event payload type; valid when HasDTMF
	HasDTMF     bool           // the answer accepted telephone-event/8000
	PTime       int            // a=ptime in ms, DefaultPTime when absent
	Direction   Direction      // as written by the far side
}

// ParseAnswer parses an SDP answer and picks the first of offered (our
// preference order) that the answer's first audio stream accepts. Errors are
// *SDPError values.
func ParseAnswer(body []byte, offered []Codec) (Answer, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return Answer{}, &SDPError{Kind: ErrNoSDP}
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return Answer{}, sdpErr(ErrMalformedSDP, "%v", err)
	}
	var md *sdp.MediaDescription
	for _, m := range sd.MediaDescriptions {
		if m != nil && strings.EqualFold(m.MediaName.Media, "audio") {
			md = m
			break
		}
	}
	if md == nil {
		return Answer{}, sdpErr(ErrMalformedSDP, "no audio stream")
	}
	port := md.MediaName.Port.Value
	if port == 0 {
		return Answer{}, sdpErr(ErrMediaRejected, "audio port 0")
	}
	if port < 0 || port > 65535 {
		return Answer{}, sdpErr(ErrMalformedSDP, "audio port %d out of range", port)
	}
	if !isPlainRTP(md.MediaName.Protos) {
		return Answer{}, sdpErr(ErrNoCommonCodec, "unsupported transport %q", strings.Join(md.MediaName.Protos, "/"))
	}

	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return Answer{}, sdpErr(ErrMalformedSDP, "no connection address")
	}
	ip, err := parseConnAddr(ci)
	if err != nil {
		return Answer{}, err
	}

	ans := Answer{PTime: DefaultPTime, Direction: DirSendRecv}
	if ip.IsUnspecified() {
		// RFC 2543 hold: the far side wants no audio from us.
		ans.Direction = DirSendOnly
	} else {
		ans.Remote = netip.AddrPortFrom(ip, uint16(port))
	}

	// Direction and ptime: media level overrides session level.
	for _, attrs := range [][]sdp.Attribute{sd.Attributes, md.Attributes} {
		for _, a := range attrs {
			if d, ok := parseDirection(a.Key); ok {
				ans.Direction = d
			}
			if a.Key == "ptime" {
				if n, err := strconv.Atoi(strings.TrimSpace(a.Value)); err == nil && n > 0 && n <= 1000 {
					ans.PTime = n
				}
			}
		}
	}
	if ip.IsUnspecified() && ans.Direction.Receives() {
		ans.Direction = DirSendOnly
	}

	// Payload formats: rtpmap by payload type.
	rtpmap := make(map[int]string, len(md.Attributes))
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptStr, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " ")
		if !ok {
			continue
		}
		pt, err := strconv.Atoi(ptStr)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		rtpmap[pt] = strings.TrimSpace(enc)
	}
	var fmts []int
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		fmts = append(fmts, pt)
	}
	if len(fmts) == 0 {
		return Answer{}, sdpErr(ErrMalformedSDP, "no payload formats")
	}

	found := false
	for _, c := range offered {
		if pt, ok := matchCodec(c, fmts, rtpmap); ok {
			ans.Codec = c
			ans.Codec.PayloadType = uint8(pt)
			found = true
			break
		}
	}
	if !found {
		return Answer{}, sdpErr(ErrNoCommonCodec, "answer formats %v", md.MediaName.Formats)
	}
	for _, pt := range fmts {
		if enc, ok := rtpmap[pt]; ok && strings.EqualFold(enc, "telephone-event/8000") {
			ans.DTMFPayload = uint8(pt)
			ans.HasDTMF = true
			break
		}
	}
	return ans, nil
}

// isPlainRTP accepts RTP/AVP and RTP/AVPF (no SRTP, no DTLS).
func isPlainRTP(protos []string) bool {
	p := strings.ToUpper(strings.Join(protos, "/"))
	return p == "RTP/AVP" || p == "RTP/AVPF"
}

func parseConnAddr(ci *sdp.ConnectionInformation) (netip.Addr, error) {
	if !strings.EqualFold(ci.NetworkType, "IN") {
		return netip.Addr{}, sdpErr(ErrMalformedSDP, "network type %q", ci.NetworkType)
	}
	raw := ci.Address.Address
	// Multicast addresses may carry /ttl/range; unicast has none.
	if i := strings.IndexByte(raw, '/'); i >= 0 {
		raw = raw[:i]
	}
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Addr{}, sdpErr(ErrMalformedSDP, "connection address %q is not an IP address", ci.Address.Address)
	}
	switch strings.ToUpper(ci.AddressType) {
	case "IP4":
		if !ip.Unmap().Is4() {
			return netip.Addr{}, sdpErr(ErrMalformedSDP, "IP4 connection address %q", raw)
		}
		ip = ip.Unmap()
	case "IP6":
		if !ip.Is6() {
			return netip.Addr{}, sdpErr(ErrMalformedSDP, "IP6 connection address %q", raw)
		}
		ip = ip.WithZone("")
	default:
		return netip.Addr{}, sdpErr(ErrMalformedSDP, "address type %q", ci.AddressType)
	}
	if ip.IsMulticast() {
		return netip.Addr{}, sdpErr(ErrMalformedSDP, "multicast connection address %s", ip)
	}
	return ip, nil
}

// matchCodec returns the payload type under which the answer carries c:
// the rtpmap name/rate when present, else the static payload type number.
func matchCodec(c Codec, fmts []int, rtpmap map[int]string) (int, bool) {
	for _, pt := range fmts {
		enc, ok := rtpmap[pt]
		if !ok {
			if pt == int(c.PayloadType) && pt < 96 {
				return pt, true
			}
			continue
		}
		name, rest, _ := strings.Cut(enc, "/")
		rate, _, _ := strings.Cut(rest, "/")
		if strings.EqualFold(name, c.Name) && (rate == "" || rate == strconv.Itoa(c.ClockRate)) {
			return pt, true
		}
	}
	return 0, false
}
