package media

import "strings"

// HoldAware is implemented by endpoints whose dead-media watch can pause
// while the peer is on hold (RTPEndpoint).
type HoldAware interface {
	PauseDeadMedia(paused bool)
}

// PeerSends reports whether the author of a session description will send
// audio: the direction of its first audio section (or of the session) is
// sendrecv or sendonly, the default being sendrecv (RFC 3264 section 5.1).
func PeerSends(sdp string) bool {
	dir, inAudio, seenAudio := "sendrecv", false, false
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m="):
			if seenAudio {
				return dir == "sendrecv" || dir == "sendonly"
			}
			inAudio = strings.HasPrefix(line, "m=audio")
			seenAudio = seenAudio || inAudio
		case line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive":
			if inAudio || !seenAudio {
				dir = line[2:]
			}
		}
	}
	return dir == "sendrecv" || dir == "sendonly"
}

// NoteHold pauses or resumes ep's dead-media watch after the peer's new
// session description, if ep supports it.
func NoteHold(ep Endpoint, peerSDP string) {
	if h, ok := ep.(HoldAware); ok && ep != nil {
		h.PauseDeadMedia(!PeerSends(peerSDP))
	}
}
