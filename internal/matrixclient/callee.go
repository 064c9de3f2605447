package matrixclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/media"
	gwmatrix "github.com/matrix-gateway/gateway/signalling/matrix"
)

// Incoming is an m.call.invite the client received.
type Incoming struct {
	c      *Client
	Room   id.RoomID
	Sender id.UserID
	Invite *gwmatrix.Invite
}

// WaitIncoming waits for an m.call.invite addressed to this user (or to
// anyone in the room) that was not handled before.
func (c *Client) WaitIncoming(ctx context.Context) (*Incoming, error) {
	var inv *gwmatrix.Invite
	evt, err := c.WaitEvent(ctx, func(e *event.Event) bool {
		if e.Type.Type != gwmatrix.EventInvite || e.Sender == c.Cli.UserID {
			return false
		}
		content, err := gwmatrix.Parse(e.Type.Type, e.Content.VeryRaw)
		if err != nil {
			return false
		}
		i := content.(*gwmatrix.Invite)
		if i.Invitee != "" && i.Invitee != string(c.Cli.UserID) {
			return false
		}
		if c.claimed(e.ID) {
			return false
		}
		inv = i
		return true
	})
	if err != nil {
		return nil, err
	}
	return &Incoming{c: c, Room: evt.RoomID, Sender: evt.Sender, Invite: inv}, nil
}

// claimed marks an invite as handled. It runs inside WaitEvent's match, with
// c.mu held, so it uses its own lock.
func (c *Client) claimed(e id.EventID) bool {
	c.handledMu.Lock()
	defer c.handledMu.Unlock()
	if c.handled == nil {
		c.handled = map[id.EventID]bool{}
	}
	if c.handled[e] {
		return true
	}
	c.handled[e] = true
	return false
}

// Reject declines the call with m.call.reject.
func (in *Incoming) Reject(ctx context.Context, party string) error {
	call := &Call{c: in.c, room: in.Room, callID: string(in.Invite.CallID), party: party}
	return call.send(ctx, &gwmatrix.Reject{Common: call.common()})
}

// Answer answers the call with a pion peer that sends a tone; party is this
// device's party_id.
func (in *Incoming) Answer(ctx context.Context, party string, toneHz float64) (*Call, error) {
	api := testAPI()
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, err
	}
	track := media.NewAudioTrack("audio", "teststream")
	call := &Call{c: in.c, room: in.Room, callID: string(in.Invite.CallID), party: party, pc: pc, track: track, dtmf: make(chan rune, 64),
		answered: make(chan struct{}), ended: make(chan struct{}), stopTone: make(chan struct{}), remoteParty: string(in.Invite.PartyID)}
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { go call.receive(t); go drainRTCP(r) })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: in.Invite.Offer.SDP}); err != nil {
		return nil, fmt.Errorf("offer: %w", err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		return nil, err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, err
	}
	gather := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return nil, err
	}
	select {
	case <-gather:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a := &gwmatrix.Answer{Common: call.common(), Answer: gwmatrix.SessionDescription{Type: "answer", SDP: pc.LocalDescription().SDP}}
	a.SetMetadata(gwmatrix.StreamMetadata{"teststream": {Purpose: gwmatrix.PurposeUserMedia}})
	if err := call.send(ctx, a); err != nil {
		return nil, err
	}
	close(call.answered)
	go call.watchCallee()
	go call.sendTone(toneHz)
	return call, nil
}

// watchCallee follows the caller's select_answer and hangup.
func (call *Call) watchCallee() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*60e9)
	defer cancel()
	for {
		evt, err := call.c.WaitEvent(ctx, func(e *event.Event) bool {
			if e.RoomID != call.room || e.Sender == call.c.Cli.UserID {
				return false
			}
			if e.Type.Type != gwmatrix.EventSelectAnswer && e.Type.Type != gwmatrix.EventHangup {
				return false
			}
			var cm gwmatrix.Common
			_ = json.Unmarshal(e.Content.VeryRaw, &cm)
			return string(cm.CallID) == call.callID && !call.seen(e.ID, call.party)
		})
		if err != nil {
			return
		}
		content, err := gwmatrix.Parse(evt.Type.Type, evt.Content.VeryRaw)
		if err != nil {
			continue
		}
		switch v := content.(type) {
		case *gwmatrix.SelectAnswer:
			call.mu.Lock()
			call.selected = string(v.SelectedPartyID)
			call.mu.Unlock()
			if string(v.SelectedPartyID) != call.party {
				call.end("answered elsewhere")
				return
			}
		case *gwmatrix.Hangup:
			call.end(v.ReasonOrDefault())
			return
		}
	}
}

// Selected is the party the caller selected, once known.
func (call *Call) Selected() string {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.selected
}

func testAPI() *webrtc.API {
	me := &webrtc.MediaEngine{}
	_ = media.RegisterAudioCodecs(me)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // 0 would mean pion's default (query), not off
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	// RTCP sender and receiver reports, as browsers send them, so the
	// gateway can measure the round trip to the Matrix side.
	reg := &interceptor.Registry{}
	_ = webrtc.ConfigureRTCPReports(reg)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
}

// drainRTCP reads the receiver's RTCP so that the interceptors see the
// gateway's sender reports (and the receiver reports carry LSR/DLSR).
func drainRTCP(r *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
	}
}
