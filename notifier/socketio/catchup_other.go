//go:build !linux

package socketio

import "net"

// trackedConn would let the loop see a probing WebSocket's reader catch up with the
// kernel; only Linux has it (FIONREAD on a raw socket). Elsewhere a request is
// applied without waiting for a probe's frames that the reader has not read yet.
type trackedConn struct{ net.Conn }

func trackConn(net.Conn, chan struct{}) *trackedConn { return nil }

func (*trackedConn) caughtUp() bool { return true }
func (*trackedConn) unwatch()       {}
func (*trackedConn) untrack()       {}
