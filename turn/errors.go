package turn

import "errors"

// Sentinel errors of the package.
var (
	// ErrConfig marks an invalid Config.
	ErrConfig = errors.New("turn: invalid config")
	// ErrNoRelayPort means no relay port of the range could be bound (508).
	ErrNoRelayPort = errors.New("turn: no free relay port")
	// ErrPeerDenied means the peer address is refused by the peer policy (403).
	ErrPeerDenied = errors.New("turn: peer address denied")
	// ErrTCPRelay means TCP relay allocations (RFC 6062) are not offered.
	ErrTCPRelay = errors.New("turn: TCP relay allocations are not supported")
	// ErrBadUsername means a TURN REST user name is not "<expiry>:<user>".
	ErrBadUsername = errors.New("turn: user name is not <expiry>:<user>")
)
