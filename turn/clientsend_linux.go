//go:build linux

package turn

import (
	"syscall"
)

// The relay side sends to clients on the UDP listener without ever
// waiting: the epoll loop serves every allocation, so a full send buffer
// (a saturated network card) must drop the datagram, as UDP may, instead
// of parking the loop (net.UDPConn's WriteTo waits for the socket to
// become writable).

// initRawSend prepares g for sendToClient: the listener's raw connection
// and its address family.
func (g *guardConn) initRawSend() {
	rc, err := g.udp.SyscallConn()
	if err != nil {
		return
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		sa, err := syscall.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch sa.(type) {
		case *syscall.SockaddrInet4:
			g.v6, ok = false, true
		case *syscall.SockaddrInet6:
			g.v6, ok = true, true
		}
	})
	if ok {
		g.rc = rc
	}
}

// initClientSend builds c's send function once (no allocation per packet).
func (c *relayConn) initClientSend() {
	if c.g == nil || c.g.rc == nil {
		return
	}
	v6 := c.g.v6
	c.sendFn = func(fd uintptr) bool {
		_, c.sendErr = sendto(int(fd), c.sendBuf, c.sendAP, v6) //nolint:gosec // a descriptor
		return true                                             // never wait for writability
	}
}
