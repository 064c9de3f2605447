package signalling

import "time"

// Direction says which way a call goes.
type Direction string

// Call directions.
const (
	DirectionToPhone    Direction = "to_phone"   // a Matrix user calls a phone number
	DirectionToMatrix   Direction = "to_matrix"  // a phone calls a Matrix user
	DirectionConference Direction = "conference" // a participant of a conference call (dial-in, dial-out, Matrix)
)

// CallRecord is what the gateway records about one call (a CDR). The call
// core fills the neutral fields; each leg adds its own through Describer.
type CallRecord struct {
	ID        CallID
	Direction Direction
	From      Party
	To        Party

	Started  time.Time
	Ringing  time.Time // the far side first alerted (post-dial delay = Ringing - Started)
	Answered time.Time // zero if never answered
	Bridged  time.Time // both legs answered and audio bridged (Bridged - Answered = answer overhead)
	Ended    time.Time // zero while the call is up

	Cause   Cause  // neutral end cause
	Detail  string // free text, e.g. "SIP 486 Busy Here"
	EndedBy string // kind of the leg that ended the call ("sip", "matrix"), "" if the gateway did

	// Filled by the legs (Describer).
	MatrixRoom   string // room of the Matrix call
	MatrixCallID string // m.call.* call_id
	MatrixReason string // m.call.hangup/reject reason sent or received
	Trunk        string // SIP trunk name
	SIPCallID    string // SIP Call-ID
	SIPStatus    int    // final SIP status received or sent (0: none, e.g. BYE after answer)
	MatrixCodec  string // e.g. "opus/48000/2"
	PhoneCodec   string // e.g. "PCMU/8000"
	// Media quality, per leg as received by the gateway.
	MatrixPacketsIn, MatrixPacketsLost uint64
	PhonePacketsIn, PhonePacketsLost   uint64
	// Media health, filled by the call core from the bridged endpoints
	// (media.HealthReporter): interarrival jitter of the stream received
	// from the leg and round trip (RTCP; 0 when unknown), both in ms, and
	// the E-model MOS estimate of that stream (0: not measured).
	MatrixJitterMS, MatrixRTTMS, MatrixMOS float64
	PhoneJitterMS, PhoneRTTMS, PhoneMOS    float64
	PhoneLostByPeer                        uint64 // our packets the trunk reported lost (RTCP)
	DeadMedia                              string // kind of the leg whose RTP stopped ("sip", "matrix"), "" if none
}

// Duration is the answered time of the call, zero if never answered.
func (r *CallRecord) Duration() time.Duration {
	if r.Answered.IsZero() || r.Ended.IsZero() {
		return 0
	}
	return r.Ended.Sub(r.Answered)
}

// Describer is an optional Leg capability: the leg adds what it knows to a
// call record (room, Call-ID, codec, packet counts). It is called from the
// call's loop when the call starts, is answered and ends.
type Describer interface {
	Describe(r *CallRecord)
}

// Recorder stores call records. The call core calls it from each call's
// loop at start, answer and end; implementations must not block for long
// and must never lose an end record (write it through, or queue it durably).
type Recorder interface {
	CallStarted(r CallRecord)
	CallAnswered(r CallRecord)
	CallEnded(r CallRecord)
}

type nopRecorder struct{}

func (nopRecorder) CallStarted(CallRecord)  {}
func (nopRecorder) CallAnswered(CallRecord) {}
func (nopRecorder) CallEnded(CallRecord)    {}

// Recorders sends every record to each of its recorders in turn.
type Recorders []Recorder

// CallStarted implements Recorder.
func (rs Recorders) CallStarted(r CallRecord) {
	for _, x := range rs {
		x.CallStarted(r)
	}
}

// CallAnswered implements Recorder.
func (rs Recorders) CallAnswered(r CallRecord) {
	for _, x := range rs {
		x.CallAnswered(r)
	}
}

// CallEnded implements Recorder.
func (rs Recorders) CallEnded(r CallRecord) {
	for _, x := range rs {
		x.CallEnded(r)
	}
}
