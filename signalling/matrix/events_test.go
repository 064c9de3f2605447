package matrix

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// sample is one file of testdata/events: an event type and its content, in
// the shape matrix-js-sdk 43 sends.
type sample struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

func loadSample(t *testing.T, name string) sample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s sample
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, name string) Content {
	t.Helper()
	s := loadSample(t, name)
	c, err := Parse(s.Type, s.Content)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if c.EventType() != s.Type {
		t.Fatalf("%s: EventType %q, want %q", name, c.EventType(), s.Type)
	}
	return c
}

func TestParseJSSDKInvite(t *testing.T) {
	inv := mustParse(t, "invite_jssdk").(*Invite)
	if inv.CallID != "1732230001234AbCdEfGhIjKlMnOp" || inv.PartyID != "JSSDKDEVICE" {
		t.Errorf("ids = %q %q", inv.CallID, inv.PartyID)
	}
	if inv.Version != Version1 || inv.Legacy() {
		t.Errorf("version = %v", inv.Version)
	}
	if inv.Lifetime != 60000 {
		t.Errorf("lifetime = %d", inv.Lifetime)
	}
	if inv.Invitee != "@_pstn_+15550100100:localhost" {
		t.Errorf("invitee = %q", inv.Invitee)
	}
	if inv.Offer.Type != "offer" || !strings.HasPrefix(inv.Offer.SDP, "v=0\r\n") || !strings.Contains(inv.Offer.SDP, "a=rtpmap:111 opus/48000/2\r\n") {
		t.Errorf("offer = %q / %.40q", inv.Offer.Type, inv.Offer.SDP)
	}
	sm := inv.Metadata()
	info, ok := sm["5d0e6c1f-8c52-4a3b-9b0a-3f1a2b3c4d5e"]
	if len(sm) != 1 || !ok || info.Purpose != PurposeUserMedia || info.AudioMuted || !info.VideoMuted {
		t.Errorf("metadata = %+v", sm)
	}
	if err := inv.CheckSupported(); err != nil {
		t.Errorf("CheckSupported: %v", err)
	}
}

func TestParseUnstableStreamMetadataOnly(t *testing.T) {
	inv := mustParse(t, "invite_unstable_meta_only").(*Invite)
	if got := inv.Metadata()["5d0e6c1f-8c52-4a3b-9b0a-3f1a2b3c4d5e"].Purpose; got != PurposeUserMedia {
		t.Fatalf("purpose from the MSC3077 key = %q", got)
	}
	_, body, err := Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["sdp_stream_metadata"]) == "" || string(m["sdp_stream_metadata"]) != string(m["org.matrix.msc3077.sdp_stream_metadata"]) {
		t.Errorf("Marshal must write both metadata keys alike: %s", body)
	}
}

func TestParseLegacyInvite(t *testing.T) {
	inv := mustParse(t, "invite_v0").(*Invite)
	if inv.Version != Version0 || !inv.Legacy() || inv.PartyID != "" {
		t.Fatalf("version %v party %q", inv.Version, inv.PartyID)
	}
	err := inv.CheckSupported()
	if !errors.Is(err, ErrLegacyVersion) || errors.Is(err, ErrMalformed) {
		t.Fatalf("CheckSupported = %v", err)
	}
	if signalling.CauseOf(err) != signalling.CauseIncompatible {
		t.Errorf("cause = %v", signalling.CauseOf(err))
	}
	h := mustParse(t, "hangup_v0_noreason").(*Hangup)
	if h.ReasonOrDefault() != signalling.MatrixReasonUserHangup || h.Version != Version0 {
		t.Errorf("v0 hangup = %+v", h)
	}
}

func TestParseCandidates(t *testing.T) {
	c := mustParse(t, "candidates_jssdk").(*Candidates)
	if len(c.Candidates) != 2 {
		t.Fatalf("%d candidates", len(c.Candidates))
	}
	for i, cand := range c.Candidates {
		if cand.IsEnd() || cand.SDPMid == nil || *cand.SDPMid != "0" || cand.SDPMLineIndex == nil || *cand.SDPMLineIndex != 0 ||
			cand.UsernameFragment == nil || *cand.UsernameFragment != "Xy1z" || !strings.HasPrefix(cand.Candidate, "candidate:") {
			t.Errorf("candidate %d = %+v", i, cand)
		}
	}
	end := mustParse(t, "candidates_end").(*Candidates)
	if len(end.Candidates) != 1 || !end.Candidates[0].IsEnd() || end.Candidates[0].SDPMid != nil || end.Candidates[0].SDPMLineIndex != nil {
		t.Fatalf("end = %+v", end.Candidates)
	}
}

func TestParseOthers(t *testing.T) {
	a := mustParse(t, "answer_jssdk").(*Answer)
	if a.Answer.Type != "answer" || !strings.Contains(a.Answer.SDP, "a=setup:active") || a.PartyID != "CALLEEDEV" || len(a.Metadata()) != 1 {
		t.Errorf("answer = %+v", a)
	}
	sa := mustParse(t, "select_answer").(*SelectAnswer)
	if sa.SelectedPartyID != "CALLEEDEV" {
		t.Errorf("select_answer = %+v", sa)
	}
	r := mustParse(t, "reject").(*Reject)
	if r.CallID != "1732230001234AbCdEfGhIjKlMnOp" || r.PartyID != "CALLEEDEV" {
		t.Errorf("reject = %+v", r)
	}
	n := mustParse(t, "negotiate_offer").(*Negotiate)
	if n.Description.Type != "offer" || !strings.Contains(n.Description.SDP, "a=sendonly") || n.Lifetime != 60000 {
		t.Errorf("negotiate = %+v", n)
	}
	h := mustParse(t, "hangup_user").(*Hangup)
	if h.Reason != "user_hangup" {
		t.Errorf("hangup = %+v", h)
	}
	m := mustParse(t, "metadata_changed").(*SDPStreamMetadataChanged)
	if info := m.Metadata()["5d0e6c1f-8c52-4a3b-9b0a-3f1a2b3c4d5e"]; !info.AudioMuted || !info.VideoMuted {
		t.Errorf("metadata changed = %+v", m.Metadata())
	}
}

func TestParseVersions(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Version
		ok   bool
	}{
		{`"1"`, Version1, true},
		{`"0"`, Version0, true},
		{`1`, Version1, true},
		{`0`, Version0, true},
		{`0.0`, Version0, true},
		{`-0`, Version0, true},
		{`2`, Version1, true},
		{`"1.1"`, Version1, true},
		{`"org.example.v2"`, Version1, true},
		{`"\u0030"`, Version0, true},
		{`1e400`, Version1, true},
		{`true`, 0, false},
		{`{}`, 0, false},
		{`[]`, 0, false},
		{`null`, 0, false}, // required field
		{``, 0, false},     // absent
	} {
		content := `{"call_id":"c","party_id":"p","reason":"user_hangup"`
		if tc.raw != "" {
			content += `,"version":` + tc.raw
		}
		content += "}"
		c, err := Parse(EventHangup, json.RawMessage(content))
		if !tc.ok {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("version %s: err = %v, want ErrMalformed", tc.raw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("version %s: %v", tc.raw, err)
			continue
		}
		if got := c.Call().Version; got != tc.want {
			t.Errorf("version %s = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	sdp := `"sdp":"v=0\r\n"`
	big := strings.Repeat("a", MaxSDPLength)
	manyCands := `[` + strings.TrimSuffix(strings.Repeat(`{"candidate":""},`, MaxCandidates+1), ",") + `]`
	for _, tc := range []struct {
		name, typ, content, field string
	}{
		{"not json", EventInvite, `{`, ""},
		{"too large", EventHangup, `{"call_id":"c","party_id":"p","version":"1","x":"` + strings.Repeat("x", MaxContentLength) + `"}`, ""},
		{"array", EventInvite, `[]`, ""},
		{"empty call_id", EventHangup, `{"call_id":"","party_id":"p","version":"1"}`, "call_id"},
		{"long call_id", EventHangup, `{"call_id":"` + strings.Repeat("x", 256) + `","party_id":"p","version":"1"}`, "call_id"},
		{"control char in call_id", EventHangup, `{"call_id":"a\nb","party_id":"p","version":"1"}`, "call_id"},
		{"v1 without party_id", EventHangup, `{"call_id":"c","version":"1"}`, "party_id"},
		{"long party_id", EventReject, `{"call_id":"c","party_id":"` + strings.Repeat("p", 256) + `","version":"1"}`, "party_id"},
		{"invite without lifetime", EventInvite, `{"call_id":"c","party_id":"p","version":"1","offer":{"type":"offer",` + sdp + `}}`, "lifetime"},
		{"invite zero lifetime", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":0,"offer":{"type":"offer",` + sdp + `}}`, "lifetime"},
		{"invite negative lifetime", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":-5,"offer":{"type":"offer",` + sdp + `}}`, "lifetime"},
		{"invite string junk lifetime", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":"soon","offer":{"type":"offer",` + sdp + `}}`, ""},
		{"invite without sdp", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":60000,"offer":{"type":"offer"}}`, "offer.sdp"},
		{"invite sdp too big", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":60000,"offer":{"type":"offer","sdp":"` + big + `b"}}`, "offer.sdp"},
		{"invite bad invitee", EventInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":60000,"invitee":"bob","offer":{` + sdp + `}}`, "invitee"},
		{"answer without sdp", EventAnswer, `{"call_id":"c","party_id":"p","version":"1","answer":{"type":"answer","sdp":""}}`, "answer.sdp"},
		{"candidates missing", EventCandidates, `{"call_id":"c","party_id":"p","version":"1"}`, "candidates"},
		{"candidates null", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":null}`, "candidates"},
		{"too many candidates", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":` + manyCands + `}`, "candidates"},
		{"candidate without mid", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"candidate:1 1 udp 1 127.0.0.1 1 typ host"}]}`, "candidates"},
		{"candidate with CRLF", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"candidate:1\r\na=evil","sdpMid":"0"}]}`, "candidates.candidate"},
		{"candidate bad index", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"x","sdpMLineIndex":-1}]}`, ""},
		{"candidate huge index", EventCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"x","sdpMLineIndex":70000}]}`, ""},
		{"select_answer empty", EventSelectAnswer, `{"call_id":"c","party_id":"p","version":"1","selected_party_id":""}`, "selected_party_id"},
		{"negotiate bad type", EventNegotiate, `{"call_id":"c","party_id":"p","version":"1","description":{"type":"pranswer",` + sdp + `}}`, "description.type"},
		{"negotiate negative lifetime", EventNegotiate, `{"call_id":"c","party_id":"p","version":"1","lifetime":-1,"description":{"type":"offer",` + sdp + `}}`, "lifetime"},
		{"hangup long reason", EventHangup, `{"call_id":"c","party_id":"p","version":"1","reason":"` + strings.Repeat("r", 256) + `"}`, "reason"},
		{"metadata_changed empty", EventSDPStreamMetadataChanged, `{"call_id":"c","party_id":"p","version":"1","sdp_stream_metadata":{}}`, "sdp_stream_metadata"},
		{"too many streams", EventSDPStreamMetadataChanged, `{"call_id":"c","party_id":"p","version":"1","sdp_stream_metadata":{` + manyStreams() + `}}`, "sdp_stream_metadata"},
	} {
		_, err := Parse(tc.typ, json.RawMessage(tc.content))
		var ee *EventError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &ee) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
			continue
		}
		if ee.Field != tc.field || ee.EventType != tc.typ {
			t.Errorf("%s: field %q type %q, want %q %q (%v)", tc.name, ee.Field, ee.EventType, tc.field, tc.typ, err)
		}
		if !strings.HasPrefix(err.Error(), "matrix: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
		if signalling.CauseOf(err) != signalling.CauseProtocolError {
			t.Errorf("%s: cause %v", tc.name, signalling.CauseOf(err))
		}
	}
}

func manyStreams() string {
	var b strings.Builder
	for i := range MaxStreams + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"s` + string(rune('a'+i)) + `":{"purpose":"m.usermedia"}`)
	}
	return b.String()
}

func TestParseUnknownType(t *testing.T) {
	for _, typ := range []string{"m.room.message", "m.call.replaces", "", "org.matrix.call.asserted_identity"} {
		_, err := Parse(typ, json.RawMessage(`{}`))
		if !errors.Is(err, ErrUnknownEventType) || errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v", typ, err)
		}
		if IsCallEvent(typ) {
			t.Errorf("IsCallEvent(%q) = true", typ)
		}
	}
	for _, typ := range []string{EventInvite, EventCandidates, EventAnswer, EventSelectAnswer, EventReject, EventNegotiate, EventHangup, EventSDPStreamMetadataChanged} {
		if !IsCallEvent(typ) {
			t.Errorf("IsCallEvent(%q) = false", typ)
		}
	}
}

func TestParseLenientLifetimes(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int64
	}{
		{`60000`, 60000},
		{`6e4`, 60000},
		{`60000.0`, 60000},
		{`"60000"`, 60000},
		{`1.5`, 1},
		{`86400000`, MaxLifetime},
		{`1e30`, MaxLifetime},
		{`99999999999999999999999`, MaxLifetime},
	} {
		c, err := Parse(EventInvite, json.RawMessage(`{"call_id":"c","party_id":"p","version":"1","lifetime":`+tc.raw+`,"offer":{"type":"offer","sdp":"v=0\r\n"}}`))
		if err != nil {
			t.Errorf("lifetime %s: %v", tc.raw, err)
			continue
		}
		if got := c.(*Invite).Lifetime; got != tc.want {
			t.Errorf("lifetime %s = %d, want %d", tc.raw, got, tc.want)
		}
	}
	// A negotiate may lack its lifetime.
	c, err := Parse(EventNegotiate, json.RawMessage(`{"call_id":"c","party_id":"p","version":"1","description":{"type":"answer","sdp":"v=0\r\n"}}`))
	if err != nil || c.(*Negotiate).Lifetime != 0 {
		t.Errorf("negotiate without lifetime: %v %+v", err, c)
	}
}

func TestParseDefaultsDescriptionType(t *testing.T) {
	c, err := Parse(EventInvite, json.RawMessage(`{"call_id":"c","party_id":"p","version":"1","lifetime":1000,"offer":{"sdp":"v=0\r\n"}}`))
	if err != nil || c.(*Invite).Offer.Type != "offer" {
		t.Fatalf("invite: %v %+v", err, c)
	}
	c, err = Parse(EventAnswer, json.RawMessage(`{"call_id":"c","party_id":"p","version":"1","answer":{"sdp":"v=0\r\n"}}`))
	if err != nil || c.(*Answer).Answer.Type != "answer" {
		t.Fatalf("answer: %v %+v", err, c)
	}
}

func TestMarshalExactJSON(t *testing.T) {
	mid, idx := "0", uint16(0)
	common := Common{CallID: "c1", PartyID: "GW"}
	for _, tc := range []struct {
		name    string
		content Content
		typ     string
		want    string
	}{
		{"hangup", &Hangup{Common: common, Reason: signalling.MatrixReasonUserBusy}, EventHangup,
			`{"call_id":"c1","party_id":"GW","version":"1","reason":"user_busy"}`},
		{"hangup without reason", &Hangup{Common: common}, EventHangup,
			`{"call_id":"c1","party_id":"GW","version":"1"}`},
		{"reject (legacy version value still sends 1)", &Reject{Common: Common{CallID: "c1", PartyID: "GW", Version: Version0}}, EventReject,
			`{"call_id":"c1","party_id":"GW","version":"1"}`},
		{"candidates with end", &Candidates{Common: common, Candidates: []Candidate{
			{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host", SDPMid: &mid, SDPMLineIndex: &idx},
			EndOfCandidates()}}, EventCandidates,
			`{"call_id":"c1","party_id":"GW","version":"1","candidates":[{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host","sdpMid":"0","sdpMLineIndex":0},{"candidate":""}]}`},
		{"invite without invitee", &Invite{Common: common, Offer: SessionDescription{Type: "offer", SDP: "v=0\r\n"}, Lifetime: 60000}, EventInvite,
			`{"call_id":"c1","party_id":"GW","version":"1","offer":{"type":"offer","sdp":"v=0\r\n"},"lifetime":60000}`},
		{"invite with invitee", &Invite{Common: common, Offer: SessionDescription{Type: "offer", SDP: "v=0\r\n"}, Lifetime: 60000, Invitee: "@a:b"}, EventInvite,
			`{"call_id":"c1","party_id":"GW","version":"1","offer":{"type":"offer","sdp":"v=0\r\n"},"lifetime":60000,"invitee":"@a:b"}`},
		{"answer with metadata", func() Content {
			a := &Answer{Common: common, Answer: SessionDescription{Type: "answer", SDP: "v=0\r\n"}}
			a.SetMetadata(StreamMetadata{"gw": {Purpose: PurposeUserMedia}})
			return a
		}(), EventAnswer,
			`{"call_id":"c1","party_id":"GW","version":"1","answer":{"type":"answer","sdp":"v=0\r\n"},"sdp_stream_metadata":{"gw":{"purpose":"m.usermedia"}},"org.matrix.msc3077.sdp_stream_metadata":{"gw":{"purpose":"m.usermedia"}}}`},
		{"select_answer", &SelectAnswer{Common: common, SelectedPartyID: "X"}, EventSelectAnswer,
			`{"call_id":"c1","party_id":"GW","version":"1","selected_party_id":"X"}`},
		{"negotiate answer", &Negotiate{Common: common, Description: SessionDescription{Type: "answer", SDP: "v=0\r\n"}, Lifetime: 60000}, EventNegotiate,
			`{"call_id":"c1","party_id":"GW","version":"1","description":{"type":"answer","sdp":"v=0\r\n"},"lifetime":60000}`},
	} {
		typ, body, err := Marshal(tc.content)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if typ != tc.typ || string(body) != tc.want {
			t.Errorf("%s:\n got %s %s\nwant %s %s", tc.name, typ, body, tc.typ, tc.want)
		}
	}
}

func TestMarshalDoesNotModifyInput(t *testing.T) {
	a := &Answer{Common: Common{CallID: "c", PartyID: "p"}, Answer: SessionDescription{Type: "answer", SDP: "v=0\r\n"}}
	a.Stable = StreamMetadata{"s": {Purpose: PurposeUserMedia}}
	if _, _, err := Marshal(a); err != nil {
		t.Fatal(err)
	}
	if a.Unstable != nil {
		t.Fatal("Marshal modified its input")
	}
}

func TestMarshalRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content Content
	}{
		{"nil", nil},
		{"nil pointer", (*Hangup)(nil)},
		{"nil invite pointer", (*Invite)(nil)},
		{"no party_id", &Hangup{Common: Common{CallID: "c"}}},
		{"no call_id", &Hangup{Common: Common{PartyID: "p"}}},
		{"invite without lifetime", &Invite{Common: Common{CallID: "c", PartyID: "p"}, Offer: SessionDescription{Type: "offer", SDP: "v=0"}}},
		{"invite lifetime too long", &Invite{Common: Common{CallID: "c", PartyID: "p"}, Offer: SessionDescription{Type: "offer", SDP: "v=0"}, Lifetime: MaxLifetime + 1}},
		{"nil candidates", &Candidates{Common: Common{CallID: "c", PartyID: "p"}}},
		{"negotiate without type", &Negotiate{Common: Common{CallID: "c", PartyID: "p"}, Description: SessionDescription{SDP: "v=0"}}},
	} {
		_, _, err := Marshal(tc.content)
		if err == nil {
			t.Errorf("%s: Marshal succeeded", tc.name)
		}
	}
}

func TestRoundTripSamples(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "events"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Fatalf("only %d samples", len(entries))
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".json")
		s := loadSample(t, name)
		if err := checkRoundTrip(s.Type, s.Content); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// checkRoundTrip parses content and, if it is accepted, checks that Marshal
// accepts it (version 1) and that parsing the output gives the same value.
func checkRoundTrip(typ string, content []byte) error {
	c, err := Parse(typ, content)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownEventType) {
			return errors.New("untyped error: " + err.Error())
		}
		return nil
	}
	if c.Call().Version == Version0 {
		// Version 0 events may lack party_id, which Marshal (writing "1")
		// requires; they must not make Marshal panic.
		_, _, _ = Marshal(c)
		return nil
	}
	typ2, body, err := Marshal(c)
	if err != nil {
		return errors.New("Marshal refused a parsed event: " + err.Error())
	}
	if typ2 != typ {
		return errors.New("Marshal changed the type to " + typ2)
	}
	c2, err := Parse(typ2, body)
	if err != nil {
		return errors.New("reparse failed: " + err.Error() + ": " + string(body))
	}
	if !reflect.DeepEqual(c, c2) {
		return errors.New("round trip changed the event: " + string(body))
	}
	return nil
}

func TestInviteExpiry(t *testing.T) {
	rx := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		lifetime, age int64
		want          time.Duration
	}{
		{60000, 0, 60 * time.Second},
		{60000, 1500, 58500 * time.Millisecond},
		{60000, 60000, 0},
		{60000, 90000, -30 * time.Second}, // arrived expired
		{60000, -5000, 60 * time.Second},  // clock skew: age counts as 0
		{0, 0, DefaultLifetime * time.Millisecond},
		{-1, 1000, (DefaultLifetime - 1000) * time.Millisecond},
		{3600000, 0, MaxLifetime * time.Millisecond},
		{60000, 1 << 62, -time.Duration(24*3600*1000-60000) * time.Millisecond},
	} {
		got := InviteExpiry(tc.lifetime, tc.age, rx)
		if d := got.Sub(rx); d != tc.want {
			t.Errorf("InviteExpiry(%d, %d) = rx%+v, want rx%+v", tc.lifetime, tc.age, d, tc.want)
		}
	}
}

func BenchmarkParseCandidates(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "events", "candidates_jssdk.json"))
	if err != nil {
		b.Fatal(err)
	}
	var s sample
	if err := json.Unmarshal(raw, &s); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s.Type, s.Content); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInvite(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "events", "invite_jssdk.json"))
	if err != nil {
		b.Fatal(err)
	}
	var s sample
	if err := json.Unmarshal(raw, &s); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s.Type, s.Content); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCommandLimiter(t *testing.T) {
	var l commandLimiter
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for i := range cmdBurst {
		if !l.allow("@a:hs", now) {
			t.Fatalf("command %d of the burst refused", i+1)
		}
	}
	if l.allow("@a:hs", now) {
		t.Fatal("a command beyond the burst was allowed")
	}
	if !l.allow("@b:hs", now) {
		t.Fatal("another user was limited by the first one's flood")
	}
	if !l.allow("@a:hs", now.Add(2*time.Second)) {
		t.Fatal("no command allowed 2 s later")
	}
	if l.allow("@a:hs", now.Add(2*time.Second)) {
		t.Fatal("two commands allowed 2 s after the burst")
	}
}
