package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
)

// sippInfoUAS answers with PCMU and no telephone-event, so the gateway must
// fall back to SIP INFO: it expects one INFO per digit of "1#9" (each body
// checked), sends one INFO carrying "7" the other way, then waits for BYE.
func sippInfoUAS() string {
	recvInfo := func(digit string) string {
		return fmt.Sprintf(`
  <recv request="INFO">
    <action>
      <ereg regexp="Signal= *%s" search_in="body" check_it="true" assign_to="d" />
    </action>
  </recv>
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>`, strings.ReplaceAll(digit, "#", "\\#"))
	}
	return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="dtmf over SIP INFO">
  <recv request="INVITE">
    <action>
      <ereg regexp="&lt;(sip:[^&gt;]*)&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy,contact" />
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" check_it="true" assign_to="caller" />
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" check_it="true" assign_to="callee" />
    </action>
  </recv>
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv

  ]]></send>
  <recv request="ACK" />` + recvInfo("1") + recvInfo("#") + recvInfo("9") + `
  <send retrans="500"><![CDATA[

INFO [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$callee];tag=[pid]SIPpTag01[call_number]
To: [$caller]
[last_Call-ID:]
CSeq: 1 INFO
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=7
Duration=160
  ]]></send>
  <recv response="200" />
  <recv request="BYE" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <Reference variables="d,dummy" />
</scenario>
`
}

// TestE2EDTMFOverSIPInfo: toward a trunk whose answer has no
// telephone-event, a Matrix user's digits go out as SIP INFO
// (application/dtmf-relay), one per digit, in order; an INFO from the trunk
// reaches the Matrix user as an RFC 4733 event on the WebRTC track.
func TestE2EDTMFOverSIPInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	const number = "+15550107000"
	uas := testpeers.StartSippUAS(t, sippInfoUAS(), testpeers.SippOptions{Timeout: 90 * time.Second})
	dir := t.TempDir()
	e := &e2e{t: t}
	hsPort, asPort := freeHSAndASPorts(t)
	sipPort := testpeers.FreeUDPPort(t)
	cfgText := fmt.Sprintf(`
homeserver:
  url: http://127.0.0.1:%d
  domain: localhost
appservice:
  registration: registration.yaml
  listen: 127.0.0.1:%d
authorization:
  users: ["@alice:localhost"]
  numbers: ["+1*"]
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: info
      host: 127.0.0.1
      port: %d
      number_format: e164_no_plus
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 42000
  rtp_port_max: 42999
webrtc:
  include_loopback_candidates: true
logging:
  level: debug
`, hsPort, asPort, sipPort, uas.Port)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	var err error
	if e.cfg, err = configs.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	e.logPath = filepath.Join(dir, "gateway.log")
	e.startInProcess()
	e.alice = e.login("alice")

	ghost, room := e.dmWith(e.alice, number)
	call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
	time.Sleep(time.Second) // ICE and DTLS up, media flowing
	if err := call.SendDTMF("1#9"); err != nil {
		t.Fatal(err)
	}
	// The trunk's INFO "7" comes back as a telephone-event on the WebRTC track.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(call.Digits(), "7") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := call.Digits(); got != "7" {
		t.Errorf("the Matrix user received digits %q, want \"7\" once", got)
	}
	if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
		t.Fatal(err)
	}
	// sipp exits 0 only if it got the three INFOs with the right digits in order, then the BYE.
	if err := uas.Wait(30 * time.Second); err != nil {
		t.Fatalf("sipp: %v\n%s", err, uas.Messages())
	}
	waitNoCalls(t, e)
}
