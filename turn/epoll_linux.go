//go:build linux

package turn

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// epollLoop reads the raw relay sockets (rawsock_linux.go) of all UDP
// allocations of a server from one epoll set: one wake-up per batch of
// ready sockets instead of a goroutine wake-up per packet per allocation
// (see relayLoopThread for the two ways it waits). The loop frames a bound
// peer's datagram as ChannelData and writes it to the client itself
// (relayConn.relayToClient).
// Only packets pion must see (Data indications) are handed to the
// allocation's ReadFrom through a small channel.
//
// Sockets are level-triggered and read once per readiness report: a
// socket with more queued is reported again by the next epoll_wait, which
// keeps the loop fair and saves the recvfrom that would only return
// EAGAIN (at 50 packets/s per allocation most reports carry one packet).
type epollLoop struct {
	epfd int
	wake [2]int // pipe; a byte written to wake[1] stops the loop
	done chan struct{}

	// mu guards conns, next and closed. The loop holds it shared while it
	// serves one epoll_wait batch (one uncontended read lock per batch),
	// remove holds it exclusively: once remove returns, the loop no longer
	// touches the socket, which may then be closed.
	mu     sync.RWMutex
	conns  map[int32]*relayConn // by loopID
	next   int32
	closed bool
	file   *os.File // owns epfd in runPoller
	thread bool     // relayLoopThread when the loop started
}

// relayLoopThread selects how the loop waits: true, a locked OS thread
// blocked in epoll_wait (runThread); false, a goroutine woken by Go's
// netpoller when the epoll descriptor is readable (runPoller). The
// goroutine is the default: with the server on one core the locked thread
// measured 16.2-17.0 us per relayed packet against 12.3-13.3 us (each
// return from a blocking epoll_wait costs a scheduler hand-off: sysmon
// retakes the P after 20 us, another M wakes to run the netpoller, the
// loop's M must get a P back). Read when a server starts; tests flip it.
var relayLoopThread = false

// epollBatch is the number of events one epoll_wait returns at most.
const epollBatch = 256

// wakeID is the epoll data of the stop pipe; relays get IDs from 1.
const wakeID = 0

// newEpollLoop starts a loop on its own OS thread.
func newEpollLoop() (*epollLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("turn: epoll_create: %w", err)
	}
	l := &epollLoop{epfd: epfd, done: make(chan struct{}), conns: map[int32]*relayConn{}, thread: relayLoopThread}
	if err := syscall.Pipe2(l.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("turn: pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeID}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wake[0], &ev); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("turn: epoll_ctl: %w", err)
	}
	go l.run()
	return l, nil
}

func (l *epollLoop) closeFDs() {
	if l.epfd >= 0 {
		_ = syscall.Close(l.epfd)
	}
	_ = syscall.Close(l.wake[0])
	_ = syscall.Close(l.wake[1])
}

// add registers c's raw socket.
func (l *epollLoop) add(c *relayConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("turn: relay loop closed")
	}
	l.next++
	if l.next <= wakeID {
		l.next = wakeID + 1
	}
	for l.conns[l.next] != nil { // after 2^31 allocations
		l.next++
	}
	c.loopID = l.next
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: c.loopID}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.raw.fd, &ev); err != nil {
		return fmt.Errorf("turn: epoll_ctl: %w", err)
	}
	l.conns[c.loopID] = c
	return nil
}

// remove unregisters c; afterwards the loop does not touch its socket.
func (l *epollLoop) remove(c *relayConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[c.loopID] != c {
		return
	}
	delete(l.conns, c.loopID)
	if !l.closed {
		_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.raw.fd, nil)
	}
}

// size is the number of registered relays.
func (l *epollLoop) size() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.conns)
}

// close stops the loop and waits for it. Relays still registered stay
// open (their owners close them).
func (l *epollLoop) close() {
	_, _ = syscall.Write(l.wake[1], []byte{1})
	<-l.done
}

func (l *epollLoop) run() {
	defer close(l.done)
	if l.thread {
		l.runThread()
	} else {
		l.runPoller()
	}
	l.mu.Lock()
	l.closed = true
	if l.file != nil {
		_ = l.file.Close() // the epoll descriptor
		l.epfd = -1
	}
	l.closeFDs()
	l.mu.Unlock()
}

// runThread blocks in epoll_wait on a locked OS thread until stopped.
func (l *epollLoop) runThread() {
	// The thread stays locked: it exits with the goroutine.
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, epollBatch)
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || l.serve(events[:n]) {
			return
		}
	}
}

// runPoller waits for the epoll descriptor through Go's netpoller (it is
// readable while a relay socket is) and drains it without blocking: one
// goroutine wake-up per batch of ready sockets, no extra thread.
func (l *epollLoop) runPoller() {
	if err := syscall.SetNonblock(l.epfd, true); err != nil {
		return
	}
	l.file = os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := l.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscall.EpollEvent, epollBatch)
	_ = rc.Read(func(uintptr) bool {
		for {
			n, errno := epollWaitNow(l.epfd, events)
			switch {
			case errno == syscall.EINTR:
				continue
			case errno != 0:
				return true
			case n == 0:
				return false // wait for the netpoller
			case l.serve(events[:n]):
				return true
			}
		}
	})
}

// epollWaitNow is epoll_wait with a zero timeout: it never blocks, so it
// needs no scheduler hand-off.
func epollWaitNow(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r1), errno
}

// serve reads the ready sockets of one epoll_wait batch; true means stop.
func (l *epollLoop) serve(events []syscall.EpollEvent) bool {
	stop := false
	l.mu.RLock()
	for i := range events {
		id := events[i].Fd
		if id == wakeID {
			stop = true
			continue
		}
		if c := l.conns[id]; c != nil {
			c.readReady()
		}
	}
	l.mu.RUnlock()
	return stop
}

// readReady reads one datagram from the ready socket: a bound, permitted
// peer's goes to the client, a permitted peer's without a channel to pion.
// Called by the loop only, under l.mu shared. Zero allocations on the
// fast path.
func (c *relayConn) readReady() {
	n, ap, errno := c.raw.recvfrom(c.rbuf[4 : 4+relayMTU])
	if errno != 0 {
		return // EAGAIN, or a peer's ICMP error (ECONNREFUSED): nothing to relay
	}
	if c.relayToClient(n, ap) == toPion {
		c.toSlow(n, ap)
	}
}
