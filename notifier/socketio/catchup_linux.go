package socketio

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// trackedConn is the connection of a probing WebSocket, hijacked from an upgrade
// request, through which its reader reads: until the upgrade completes, each read
// is made on the socket itself (syscall.RawConn), so that the loop can tell when the
// reader has read everything the kernel had received (caughtUp). After the upgrade
// reads go straight to the connection: an upgraded session's frames pay nothing.
type trackedConn struct {
	net.Conn
	rc    syscall.RawConn
	raw   atomic.Bool   // reads go through rc: set until the upgrade completes
	state atomic.Uint64 // odd while the reader waits in a read that found the socket empty; each change increments it
	watch atomic.Bool   // the loop waits for the reader to catch up
	ready chan struct{} // the session's wake-up, signalled when the reader parks while watched

	// The read under way; the reader's goroutine only.
	buf      []byte
	n        int
	err      error
	readFunc func(fd uintptr) bool // readFD, bound once so that a read allocates nothing
}

// trackConn wraps c when its socket can be read directly (a TCP connection without
// TLS); nil otherwise, and the loop then cannot wait for its reader.
func trackConn(c net.Conn, ready chan struct{}) *trackedConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	t := &trackedConn{Conn: c, rc: rc, ready: ready}
	t.readFunc = t.readFD
	t.raw.Store(true)
	return t
}

// Read reads as net.Conn's Read does; while tracked, through the raw socket.
func (c *trackedConn) Read(p []byte) (int, error) {
	if !c.raw.Load() || len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.buf = p
	err := c.rc.Read(c.readFunc) // honours the read deadline; fails once closed
	n, rerr := c.n, c.err
	c.buf, c.n, c.err = nil, 0, nil
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// readFD makes one read on the non-blocking socket. Finding it empty, it marks the
// reader parked before the runtime waits for the socket: until the next call, no
// byte has left the kernel that the reader has not handed on.
func (c *trackedConn) readFD(fd uintptr) bool {
	if s := c.state.Load(); s&1 == 1 {
		c.state.Store(s + 1)
	}
	for {
		n, err := syscall.Read(int(fd), c.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.state.Add(1)
			if c.watch.Load() {
				signal(c.ready)
			}
			return false
		case err != nil:
			c.err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			c.err = io.EOF
		default:
			c.n = n
		}
		return true
	}
}

// caughtUp reports whether the reader has handed on every byte the kernel had
// received by now: it waits in a read that found the socket empty, and the socket
// is still empty. Otherwise the reader signals the session's wake-up when it next
// parks. The loop's own goroutine calls it.
func (c *trackedConn) caughtUp() bool {
	c.watch.Store(true) // before looking: a park after this signals
	s := c.state.Load()
	if s&1 == 0 {
		return false
	}
	n, ok := c.received()
	// An unchanged state means the reader did not call read since it parked, so
	// what FIONREAD counted is all that arrived.
	return (!ok || n == 0) && c.state.Load() == s
}

// unwatch stops the signals caughtUp asked for.
func (c *trackedConn) unwatch() { c.watch.Store(false) }

// untrack sends reads straight to the connection from the next one on.
func (c *trackedConn) untrack() { c.raw.Store(false) }

// received returns how many bytes wait in the socket's receive queue.
func (c *trackedConn) received() (int, bool) {
	var n int32
	var errno syscall.Errno
	err := c.rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	return int(n), err == nil && errno == 0
}
