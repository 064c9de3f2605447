//go:build !linux

package turn

import (
	"errors"
	"net"
	"net/netip"
)

// rawRelays is false: without epoll, pion's goroutine reads each relay socket.
const rawRelays = false

// rawSock is never made off Linux.
type rawSock struct {
	fd    int
	local *net.UDPAddr
}

var errNoRawRelays = errors.New("turn: raw relay sockets are Linux only")

func openRawSock(string, netip.Addr, int, int) (*rawSock, error) { return nil, errNoRawRelays }

func (r *rawSock) sendTo([]byte, netip.AddrPort) (int, error) { return 0, net.ErrClosed }

func (r *rawSock) close() error { return net.ErrClosed }

// epollLoop is never made off Linux.
type epollLoop struct{}

func newEpollLoop() (*epollLoop, error) { return nil, errNoRawRelays }

func (l *epollLoop) add(*relayConn) error { return errNoRawRelays }

func (l *epollLoop) remove(*relayConn) {}

func (l *epollLoop) size() int { return 0 }

func (l *epollLoop) close() {}
