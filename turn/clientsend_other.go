//go:build !linux

package turn

// initRawSend is a no-op off Linux: sends go through net.UDPConn.
func (g *guardConn) initRawSend() {}

// initClientSend is a no-op off Linux.
func (c *relayConn) initClientSend() {}
