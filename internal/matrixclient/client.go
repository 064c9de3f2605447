// Package matrixclient is a Matrix calling client for the gateway's
// end-to-end tests: it talks to a real homeserver with a real user account
// and places version-1 m.call.* calls with a pion WebRTC peer that sends a
// tone as Opus and decodes what it receives, like Element would.
package matrixclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/media"
	gwmatrix "github.com/matrix-gateway/gateway/signalling/matrix"
)

// Client is one logged-in Matrix user that syncs in the background.
type Client struct {
	Cli      *mautrix.Client
	autoJoin atomic.Bool

	mu        sync.Mutex
	since     string
	waiters   []*waiter
	events    []*event.Event // every timeline event seen, in order
	handledMu sync.Mutex
	handled   map[id.EventID]bool
	stop      context.CancelFunc
	done      chan struct{}
}

type waiter struct {
	match func(*event.Event) bool
	ch    chan *event.Event
}

// New logs in with an access token and starts syncing.
func New(hsURL string, user id.UserID, token string) (*Client, error) {
	cli, err := mautrix.NewClient(hsURL, user, token)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{Cli: cli, stop: cancel, done: make(chan struct{})}
	// First sync to learn the position, so only new events are reported.
	resp, err := cli.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	c.since = resp.NextBatch
	go c.syncLoop(ctx)
	return c, nil
}

// SetAutoJoin makes the client join every room it is invited to.
func (c *Client) SetAutoJoin(on bool) { c.autoJoin.Store(on) }

// Close stops syncing.
func (c *Client) Close() {
	c.stop()
	<-c.done
}

func (c *Client) syncLoop(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		resp, err := c.Cli.SyncRequest(ctx, 5000, c.since, "", false, event.PresenceOnline)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		c.since = resp.NextBatch
		if c.autoJoin.Load() {
			for roomID := range resp.Rooms.Invite {
				_, _ = c.Cli.JoinRoomByID(ctx, roomID)
			}
		}
		for roomID, room := range resp.Rooms.Join {
			for _, evt := range append(room.State.Events, room.Timeline.Events...) {
				evt.RoomID = roomID
				c.deliver(evt)
			}
		}
	}
}

func (c *Client) deliver(evt *event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, evt)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.match(evt) {
			w.ch <- evt
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// WaitEvent waits for the first event, seen from now on or already seen,
// that match accepts.
func (c *Client) WaitEvent(ctx context.Context, match func(*event.Event) bool) (*event.Event, error) {
	w := &waiter{match: match, ch: make(chan *event.Event, 1)}
	c.mu.Lock()
	for _, e := range c.events {
		if match(e) {
			c.mu.Unlock()
			return e, nil
		}
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	select {
	case e := <-w.ch:
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Events returns the events seen so far in a room of the given type.
func (c *Client) Events(room id.RoomID, typ string) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*event.Event
	for _, e := range c.events {
		if e.RoomID == room && e.Type.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// LookupPhone resolves a phone number to a Matrix user the way Element's
// dial pad does: through the third-party protocol lookup.
func (c *Client) LookupPhone(ctx context.Context, protocol, number string) (id.UserID, error) {
	u := c.Cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "thirdparty", "user", protocol}, map[string]string{"m.id.phone": number})
	var res []struct {
		UserID id.UserID `json:"userid"`
	}
	if _, err := c.Cli.MakeRequest(ctx, "GET", u, nil, &res); err != nil {
		return "", err
	}
	if len(res) == 0 {
		return "", errors.New("no user for that number")
	}
	return res[0].UserID, nil
}

// CreateDM creates a direct chat with user and waits until they joined.
func (c *Client) CreateDM(ctx context.Context, user id.UserID) (id.RoomID, error) {
	resp, err := c.Cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{user}, IsDirect: true, Preset: "trusted_private_chat"})
	if err != nil {
		return "", err
	}
	_, err = c.WaitEvent(ctx, func(e *event.Event) bool {
		return e.RoomID == resp.RoomID && e.Type == event.StateMember && e.StateKey != nil &&
			*e.StateKey == string(user) && membership(e) == event.MembershipJoin
	})
	return resp.RoomID, err
}

// CreateRoomWith creates a room and invites users without waiting.
func (c *Client) CreateRoomWith(ctx context.Context, users ...id.UserID) (id.RoomID, error) {
	resp, err := c.Cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: users, Preset: "private_chat"})
	if err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

func membership(e *event.Event) event.Membership {
	var m struct {
		Membership event.Membership `json:"membership"`
	}
	_ = json.Unmarshal(e.Content.VeryRaw, &m)
	return m.Membership
}

// CallOptions configures a call.
type CallOptions struct {
	Invitee  id.UserID // empty: no invitee field
	ToneHz   float64   // tone the caller sends
	Lifetime int64     // ms, default 60000
	CallID   string    // default random
	PartyID  string    // default "testdevice"
}

// Call is one outgoing call.
type Call struct {
	c      *Client
	room   id.RoomID
	callID string
	party  string
	pc     *webrtc.PeerConnection
	track  *media.AudioTrack
	dtmf   chan rune // digits to send as telephone-event, read by sendTone

	mu          sync.Mutex
	received    []int16 // decoded audio at 8 kHz
	answered    chan struct{}
	ended       chan struct{}
	hangupWhy   string
	selected    string
	remoteParty string
	endOnce     sync.Once
	stopTone    chan struct{}
	digits      []rune // telephone-event digits received, in order
}

// PlaceCall sends m.call.invite with an Opus offer and handles the answer.
func (c *Client) PlaceCall(ctx context.Context, room id.RoomID, opts CallOptions) (*Call, error) {
	if opts.Lifetime == 0 {
		opts.Lifetime = 60000
	}
	if opts.CallID == "" {
		opts.CallID = fmt.Sprintf("c%d", time.Now().UnixNano())
	}
	if opts.PartyID == "" {
		opts.PartyID = "testdevice"
	}
	api := testAPI()
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, err
	}
	track := media.NewAudioTrack("audio", "teststream")
	if _, err := pc.AddTrack(track); err != nil {
		return nil, err
	}
	call := &Call{c: c, room: room, callID: opts.CallID, party: opts.PartyID, pc: pc, track: track, dtmf: make(chan rune, 64),
		answered: make(chan struct{}), ended: make(chan struct{}), stopTone: make(chan struct{})}
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { go call.receive(t); go drainRTCP(r) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gather := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	select {
	case <-gather:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	inv := &gwmatrix.Invite{
		Common:   gwmatrix.Common{CallID: gwmatrix.CallID(opts.CallID), PartyID: gwmatrix.PartyID(opts.PartyID), Version: gwmatrix.Version1},
		Offer:    gwmatrix.SessionDescription{Type: "offer", SDP: pc.LocalDescription().SDP},
		Lifetime: opts.Lifetime,
		Invitee:  string(opts.Invitee),
	}
	inv.SetMetadata(gwmatrix.StreamMetadata{"teststream": {Purpose: gwmatrix.PurposeUserMedia}})
	if err := call.send(ctx, inv); err != nil {
		return nil, err
	}
	if err := call.send(ctx, &gwmatrix.Candidates{Common: inv.Common, Candidates: []gwmatrix.Candidate{gwmatrix.EndOfCandidates()}}); err != nil {
		return nil, err
	}
	go call.watch()
	go call.sendTone(opts.ToneHz)
	return call, nil
}

func (call *Call) send(ctx context.Context, content gwmatrix.Content) error {
	typ, body, err := gwmatrix.Marshal(content)
	if err != nil {
		return err
	}
	_, err = call.c.Cli.SendMessageEvent(ctx, call.room, event.Type{Type: typ, Class: event.MessageEventType}, json.RawMessage(body))
	return err
}

func (call *Call) common() gwmatrix.Common {
	return gwmatrix.Common{CallID: gwmatrix.CallID(call.callID), PartyID: gwmatrix.PartyID(call.party), Version: gwmatrix.Version1}
}

// watch follows the callee's answer and hangup.
func (call *Call) watch() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		evt, err := call.c.WaitEvent(ctx, func(e *event.Event) bool {
			if e.RoomID != call.room || e.Sender == call.c.Cli.UserID {
				return false
			}
			if e.Type.Type != gwmatrix.EventAnswer && e.Type.Type != gwmatrix.EventHangup && e.Type.Type != gwmatrix.EventReject {
				return false
			}
			var cm gwmatrix.Common
			_ = json.Unmarshal(e.Content.VeryRaw, &cm)
			if string(cm.CallID) != call.callID {
				return false
			}
			// Consume each event once.
			return !call.seen(e.ID, call.party)
		})
		if err != nil {
			return
		}
		content, err := gwmatrix.Parse(evt.Type.Type, evt.Content.VeryRaw)
		if err != nil {
			call.end("bad event: " + err.Error())
			return
		}
		switch v := content.(type) {
		case *gwmatrix.Answer:
			if err := call.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: v.Answer.SDP}); err != nil {
				call.end("bad answer: " + err.Error())
				return
			}
			_ = call.send(ctx, &gwmatrix.SelectAnswer{Common: call.common(), SelectedPartyID: v.PartyID})
			close(call.answered)
		case *gwmatrix.Hangup:
			call.end(v.ReasonOrDefault())
			return
		case *gwmatrix.Reject:
			call.end("reject:" + v.Reason)
			return
		}
	}
}

var (
	seenMu  sync.Mutex
	seenIDs = map[[2]string]bool{}
)

// seen reports whether the event was already consumed by a watcher of the
// given party (each device consumes each event once).
func (call *Call) seen(e id.EventID, party string) bool {
	seenMu.Lock()
	defer seenMu.Unlock()
	k := [2]string{string(e), call.c.Cli.DeviceID.String() + "/" + party}
	if seenIDs[k] {
		return true
	}
	seenIDs[k] = true
	return false
}

func (call *Call) end(why string) {
	call.endOnce.Do(func() {
		call.mu.Lock()
		call.hangupWhy = why
		call.mu.Unlock()
		close(call.stopTone)
		close(call.ended)
		_ = call.pc.Close()
	})
}

// sendTone sends a tone as 20 ms Opus frames in real time; digits queued by
// SendDTMF replace audio frames as RFC 4733 telephone-event packets (8 kHz
// durations; the track converts for a 48 kHz event format).
func (call *Call) sendTone(freq float64) {
	enc, err := opus.NewEncoder(48000, opus.Options{})
	if err != nil {
		return
	}
	gen := media.NewToneGenerator(freq, 48000)
	pcm := make([]int16, 960)
	payload := make([]byte, 1500)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: media.OpusPayloadType, SSRC: 0x1234}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var (
		digit      rune
		evTS       uint32
		evElapsed  uint16
		evDuration uint16
		gap        int
	)
	for i := 0; i < 5*60*50; i++ {
		select {
		case <-call.stopTone:
			return
		case <-tick.C:
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		if digit == 0 && gap == 0 {
			select {
			case digit = <-call.dtmf:
				evTS, evElapsed, evDuration = pkt.Timestamp, 0, 160*8 // 160 ms
			default:
			}
		}
		if gap > 0 {
			gap--
		}
		if digit != 0 {
			code, _ := media.DTMFEvent(digit)
			evElapsed += 160
			p := media.DTMFPayload{Event: code, Volume: 10, Duration: min(evElapsed, evDuration), End: evElapsed >= evDuration}
			ev := make([]byte, media.DTMFPayloadLen)
			p.Put(ev)
			epkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: media.WebRTCEventPayloadType, SSRC: 0x1234,
				Timestamp: evTS, Marker: evElapsed == 160}, Payload: ev}
			n := 1
			if p.End {
				n = 3
			}
			for k := 0; k < n; k++ {
				if k > 0 {
					pkt.SequenceNumber++
				}
				epkt.SequenceNumber = pkt.SequenceNumber
				if b, err := epkt.Marshal(); err == nil {
					_, _ = call.track.Write(b)
				}
				epkt.Marker = false
			}
			if p.End {
				digit, gap = 0, 3
			}
			continue
		}
		if freq > 0 {
			gen.Fill(pcm)
		} else {
			clear(pcm)
		}
		n, err := enc.Encode(pcm, payload)
		if err != nil {
			continue
		}
		pkt.Payload = payload[:n]
		if b, err := pkt.Marshal(); err == nil {
			_, _ = call.track.Write(b)
		}
	}
}

// SendDTMF queues digits to be sent as RFC 4733 telephone-event, 160 ms
// each with 60 ms of audio between them.
func (call *Call) SendDTMF(digits string) error {
	for _, d := range digits {
		if _, ok := media.DTMFEvent(d); !ok {
			return fmt.Errorf("matrixclient: %q is not a DTMF digit", d)
		}
		select {
		case call.dtmf <- d:
		default:
			return errors.New("matrixclient: DTMF queue full")
		}
	}
	return nil
}

// Digits returns the telephone-event digits received so far, in order.
func (call *Call) Digits() string {
	call.mu.Lock()
	defer call.mu.Unlock()
	return string(call.digits)
}

// receive decodes the remote audio to 8 kHz and keeps it; telephone-event
// packets are decoded into digits.
func (call *Call) receive(t *webrtc.TrackRemote) {
	dec, err := opus.NewDecoder(8000)
	if err != nil {
		return
	}
	var det media.DTMFDetector
	pcm := make([]int16, 960)
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if c := t.Codec(); strings.EqualFold(c.MimeType, "audio/telephone-event") {
			if d, _, ok := det.Feed(pkt.Timestamp, pkt.Payload, int(c.ClockRate)); ok {
				call.mu.Lock()
				call.digits = append(call.digits, d)
				call.mu.Unlock()
			}
			continue
		}
		if d, _, ok := det.Media(); ok {
			call.mu.Lock()
			call.digits = append(call.digits, d)
			call.mu.Unlock()
		}
		n, err := dec.Decode(pkt.Payload, pcm)
		if err != nil {
			continue
		}
		call.mu.Lock()
		if len(call.received) < 8000*120 {
			call.received = append(call.received, pcm[:n]...)
		}
		call.mu.Unlock()
	}
}

// Answered is closed when the callee's answer was applied.
func (call *Call) Answered() <-chan struct{} { return call.answered }

// Ended is closed when the callee hung up or rejected.
func (call *Call) Ended() <-chan struct{} { return call.ended }

// HangupReason is the reason of the callee's m.call.hangup, or of its
// m.call.reject prefixed with "reject:", once Ended.
func (call *Call) HangupReason() string {
	call.mu.Lock()
	defer call.mu.Unlock()
	return call.hangupWhy
}

// Received returns a copy of the audio received so far, at 8 kHz.
func (call *Call) Received() []int16 {
	call.mu.Lock()
	defer call.mu.Unlock()
	return append([]int16(nil), call.received...)
}

// Hangup sends m.call.hangup and closes the peer.
func (call *Call) Hangup(ctx context.Context, reason string) error {
	err := call.send(ctx, &gwmatrix.Hangup{Common: call.common(), Reason: reason})
	call.end("local hangup")
	return err
}

// ICEState returns the peer's ICE connection state.
func (call *Call) ICEState() webrtc.ICEConnectionState { return call.pc.ICEConnectionState() }

// RemoteSDP returns the far side's session description ("" before it is known).
func (call *Call) RemoteSDP() string {
	if d := call.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// CallID returns the Matrix call_id.
func (call *Call) CallID() string { return call.callID }
