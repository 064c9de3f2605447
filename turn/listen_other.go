//go:build !linux

package turn

import (
	"net"
	"net/netip"
)

// listenUDP opens one UDP socket: SO_REUSEPORT load spreading is Linux only.
func listenUDP(ap netip.AddrPort, _, rcvbuf int) ([]net.PacketConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(rcvbuf)
	return []net.PacketConn{c}, nil
}
