//go:build linux

package turn

import (
	"context"
	"net"
	"net/netip"
	"syscall"
)

// listenUDP opens n UDP sockets on one address with SO_REUSEPORT, so the
// kernel spreads clients (by 4-tuple hash) over n read loops. Each gets a
// receive buffer of rcvbuf bytes (SO_RCVBUFFORCE when allowed, so the
// rmem_max sysctl does not cap it).
func listenUDP(ap netip.AddrPort, n, rcvbuf int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcvbuf) != nil {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []net.PacketConn
	addr := ap.String()
	for range n {
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		if len(conns) == 0 {
			addr = c.LocalAddr().String() // port 0: the others join the chosen port
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// soReusePort is SO_REUSEPORT on Linux (asm-generic socket.h), absent from package syscall.
const soReusePort = 0xf
