package configs

import "testing"

func TestWebRTCUDPPortValidation(t *testing.T) {
	c := validModemConfig(t)
	c.Modem.Enabled = false
	c.WebRTC.UDPPort = 40000
	for _, p := range c.validate() {
		t.Errorf("udp_port 40000: %v", p)
	}
	for _, tc := range []struct {
		port, min, max int
		want           string
	}{
		{70000, 0, 0, "between 1 and 65535"},
		{40000, 40000, 40010, "not both"},
		{20500, 0, 0, "inside media.rtp_port_min"},
	} {
		c.WebRTC.UDPPort, c.WebRTC.UDPPortMin, c.WebRTC.UDPPortMax = tc.port, tc.min, tc.max
		if _, ok := findProblem(c.validate(), "webrtc.udp_port", tc.want); !ok {
			t.Errorf("udp_port %d (range %d-%d): no problem containing %q in %v", tc.port, tc.min, tc.max, tc.want, c.validate())
		}
	}
}
