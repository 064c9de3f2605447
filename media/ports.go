package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoPorts is returned when every RTP port pair in the range is taken.
var ErrNoPorts = errors.New("media: no free RTP port in range")

// PortAllocator hands out even RTP ports (RTCP takes the odd port above)
// from PortMin..PortMax to concurrent calls. It is safe for concurrent use.
type PortAllocator struct {
	min, max int // first and last even port
	mu       sync.Mutex
	next     int
	used     map[int]struct{}
}

// NewPortAllocator returns an allocator for the even ports in portMin..portMax
// (both inclusive); the range must hold at least one port pair.
func NewPortAllocator(portMin, portMax int) (*PortAllocator, error) {
	lo, hi := portMin, portMax
	if lo%2 != 0 {
		lo++
	}
	if lo < 1024 || hi > 65535 || hi < lo+1 {
		return nil, fmt.Errorf("media: bad RTP port range %d-%d", portMin, portMax)
	}
	if hi%2 == 0 {
		hi-- // the last pair is (hi-1, hi)
	}
	return &PortAllocator{min: lo, max: hi - 1, next: lo, used: make(map[int]struct{})}, nil
}

// Size returns how many port pairs the range holds.
func (a *PortAllocator) Size() int { return (a.max-a.min)/2 + 1 }

// InUse returns how many port pairs are currently handed out.
func (a *PortAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.used)
}

// bindPair binds the RTP socket on an even port of the range and the RTCP
// socket on the port above it, trying each free pair at most once
// (round-robin, so a port just released is reused last).
func (a *PortAllocator) bindPair(ip netip.Addr) (rtp, rtcp *net.UDPConn, err error) {
	var lastErr error
	for range a.Size() {
		port, ok := a.reserve()
		if !ok {
			break
		}
		rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			rtcp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port+1))))
			if err == nil {
				return rtp, rtcp, nil
			}
			_ = rtp.Close()
		}
		lastErr = err
		a.release(port)
	}
	if lastErr != nil {
		return nil, nil, fmt.Errorf("%w: last: %w", ErrNoPorts, lastErr)
	}
	return nil, nil, ErrNoPorts
}

// reserve marks the next free even port used.
func (a *PortAllocator) reserve() (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range a.Size() {
		p := a.next
		a.next += 2
		if a.next > a.max {
			a.next = a.min
		}
		if _, taken := a.used[p]; !taken {
			a.used[p] = struct{}{}
			return p, true
		}
	}
	return 0, false
}

// release returns port to the pool.
func (a *PortAllocator) release(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, port)
}
