//go:build linux

package turn

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"
)

// rawRelays is true where relay sockets of UDP allocations are raw
// non-blocking sockets read by the epoll loop (epoll_linux.go) instead of a
// goroutine per allocation.
const rawRelays = true

// rawSock is a relay socket made with syscall.Socket: non-blocking, never
// registered with Go's netpoller. The epoll loop reads it; anyone may send
// on it. mu guards the descriptor against reuse after close: readers and
// senders hold it shared, close holds it exclusively.
type rawSock struct {
	mu     sync.RWMutex
	fd     int
	closed bool
	v6     bool // AF_INET6
	local  *net.UDPAddr
}

// openRawSock binds a non-blocking UDP socket to ip:port with a receive
// buffer of rcvbuf bytes (SO_RCVBUF, like net.UDPConn.SetReadBuffer).
func openRawSock(network string, ip netip.Addr, port, rcvbuf int) (*rawSock, error) {
	ip = ip.Unmap()
	v6 := ip.Is6() || (network == "udp6" && ip.IsUnspecified())
	if network == "udp6" && ip.Is4() && !ip.IsUnspecified() || network == "udp4" && ip.Is6() {
		return nil, fmt.Errorf("turn: relay address %s is not of the family of %s", ip, network)
	}
	family := syscall.AF_INET
	var sa syscall.Sockaddr = &syscall.SockaddrInet4{Port: port, Addr: ip.As4()}
	if v6 {
		family = syscall.AF_INET6
		a := ip.As16()
		if ip.Is4() { // unspecified IPv4 with udp6: the IPv6 wildcard
			a = [16]byte{}
		}
		sa = &syscall.SockaddrInet6{Port: port, Addr: a}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("turn: relay socket: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("turn: bind relay %s: %w", netip.AddrPortFrom(ip, uint16(port)), err) //nolint:gosec
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
	got, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("turn: relay socket name: %w", err)
	}
	local := &net.UDPAddr{}
	switch a := got.(type) {
	case *syscall.SockaddrInet4:
		local.IP, local.Port = net.IP(a.Addr[:]).To16(), a.Port
	case *syscall.SockaddrInet6:
		local.IP, local.Port = net.IP(a.Addr[:]), a.Port
	}
	return &rawSock{fd: fd, v6: v6, local: local}, nil
}

// sendTo sends b to ap without allocating. A full send buffer drops the
// datagram (EAGAIN is returned), as UDP may.
func (r *rawSock) sendTo(b []byte, ap netip.AddrPort) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return 0, net.ErrClosed
	}
	return sendto(r.fd, b, ap, r.v6)
}

// sendto is sendto(2) with the address on the stack; ap must be unmapped
// for an AF_INET socket.
func sendto(fd int, b []byte, ap netip.AddrPort, v6 bool) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	var r1 uintptr
	var errno syscall.Errno
	port := ap.Port()
	if v6 {
		sa := syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: ap.Addr().As16()}
		putPort(&sa.Port, port)
		r1, _, errno = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&sa)), syscall.SizeofSockaddrInet6)
	} else {
		if !ap.Addr().Is4() {
			return 0, syscall.EAFNOSUPPORT
		}
		sa := syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ap.Addr().As4()}
		putPort(&sa.Port, port)
		r1, _, errno = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), 0,
			uintptr(unsafe.Pointer(&sa)), syscall.SizeofSockaddrInet4)
	}
	if errno != 0 {
		return 0, errno
	}
	return int(r1), nil
}

// recvfrom is a non-blocking recvfrom(2) without allocating; the source
// comes back unmapped. The caller holds r.mu shared and checked closed.
func (r *rawSock) recvfrom(b []byte) (int, netip.AddrPort, syscall.Errno) {
	var sa syscall.RawSockaddrAny
	salen := uint32(syscall.SizeofSockaddrAny)
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(r.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
	if errno != 0 {
		return 0, netip.AddrPort{}, errno
	}
	var ap netip.AddrPort
	switch sa.Addr.Family {
	case syscall.AF_INET:
		a := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa))
		ap = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), getPort(&a.Port))
	case syscall.AF_INET6:
		a := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&sa))
		ap = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), getPort(&a.Port))
	}
	return int(r1), ap, 0
}

// close closes the descriptor once; later sends fail with net.ErrClosed.
func (r *rawSock) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return net.ErrClosed
	}
	r.closed = true
	return syscall.Close(r.fd)
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

// getPort reads a port in network byte order.
func getPort(src *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(src))
	return uint16(b[0])<<8 | uint16(b[1])
}
