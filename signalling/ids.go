package signalling

import (
	"crypto/rand"
	"encoding/hex"
)

// CallID is the gateway's own identifier for a call, distinct from a Matrix
// call_id and a SIP Call-ID.
type CallID string

// NewCallID returns a fresh random CallID.
func NewCallID() CallID {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return CallID("gw-" + hex.EncodeToString(b[:]))
}
