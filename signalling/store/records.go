package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// State is where a call record is in its life.
type State string

// Record states.
const (
	StateActive      State = "active"      // the call is up (or this process crashed during it)
	StateEnded       State = "ended"       // the call ended and its end was recorded
	StateInterrupted State = "interrupted" // the process stopped during the call; Ended is the last time it was seen
)

// Record is one stored call record.
type Record struct {
	ID           string
	Direction    signalling.Direction
	CallerNumber string
	CallerUser   string // Matrix user ID, when the caller is a Matrix user
	CalleeNumber string
	CalleeUser   string // Matrix user ID, when the callee is a Matrix user
	MatrixRoom   string
	MatrixCallID string
	Trunk        string
	SIPCallID    string

	Started  time.Time // UTC, millisecond precision
	Answered time.Time // zero if never answered
	Ended    time.Time // zero while active
	Duration time.Duration

	Cause        string // signalling.Cause name ("normal", "busy", ...); "" while active
	Detail       string
	EndedBy      string // "sip", "matrix" or "" (the gateway)
	SIPStatus    int
	MatrixReason string
	MatrixCodec  string
	PhoneCodec   string

	MatrixPacketsIn, MatrixPacketsLost uint64
	PhonePacketsIn, PhonePacketsLost   uint64

	// Media health (signalling.CallRecord): jitter and RTT in ms, E-model MOS.
	MatrixJitterMS, MatrixRTTMS, MatrixMOS float64
	PhoneJitterMS, PhoneRTTMS, PhoneMOS    float64
	PhoneLostByPeer                        uint64

	State    State
	LastSeen time.Time
}

// Filter selects records for ListCalls.
type Filter struct {
	Since, Until time.Time            // started in [Since, Until); zero = unbounded
	Direction    signalling.Direction // "" = both
	Limit        int                  // at most this many, newest first; <= 0 = all
}

var _ signalling.Recorder = (*Store)(nil)

// upsertSQL writes a whole record; it serves all three events, so a record
// whose start was lost is still complete after its end.
const upsertSQL = `INSERT INTO call_records (
	id, direction, caller_number, caller_user, callee_number, callee_user,
	matrix_room, matrix_call_id, trunk, sip_call_id,
	started_ms, answered_ms, ended_ms, duration_ms,
	cause, detail, ended_by, sip_status, matrix_reason, matrix_codec, phone_codec,
	matrix_packets_in, matrix_packets_lost, phone_packets_in, phone_packets_lost,
	state, last_seen_ms,
	matrix_jitter_ms, matrix_rtt_ms, matrix_mos, phone_jitter_ms, phone_rtt_ms, phone_mos, phone_lost_by_peer
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27,
	$28, $29, $30, $31, $32, $33, $34)
ON CONFLICT (id) DO UPDATE SET
	direction = excluded.direction, caller_number = excluded.caller_number, caller_user = excluded.caller_user,
	callee_number = excluded.callee_number, callee_user = excluded.callee_user,
	matrix_room = excluded.matrix_room, matrix_call_id = excluded.matrix_call_id,
	trunk = excluded.trunk, sip_call_id = excluded.sip_call_id,
	started_ms = excluded.started_ms, answered_ms = excluded.answered_ms, ended_ms = excluded.ended_ms,
	duration_ms = excluded.duration_ms, cause = excluded.cause, detail = excluded.detail,
	ended_by = excluded.ended_by, sip_status = excluded.sip_status, matrix_reason = excluded.matrix_reason,
	matrix_codec = excluded.matrix_codec, phone_codec = excluded.phone_codec,
	matrix_packets_in = excluded.matrix_packets_in, matrix_packets_lost = excluded.matrix_packets_lost,
	phone_packets_in = excluded.phone_packets_in, phone_packets_lost = excluded.phone_packets_lost,
	state = excluded.state, last_seen_ms = excluded.last_seen_ms,
	matrix_jitter_ms = excluded.matrix_jitter_ms, matrix_rtt_ms = excluded.matrix_rtt_ms, matrix_mos = excluded.matrix_mos,
	phone_jitter_ms = excluded.phone_jitter_ms, phone_rtt_ms = excluded.phone_rtt_ms, phone_mos = excluded.phone_mos,
	phone_lost_by_peer = excluded.phone_lost_by_peer`

// CallStarted records a new call as active. It implements signalling.Recorder.
func (s *Store) CallStarted(r signalling.CallRecord) { s.write(r, StateActive) }

// CallAnswered records the answer of a call. It implements signalling.Recorder.
func (s *Store) CallAnswered(r signalling.CallRecord) { s.write(r, StateActive) }

// CallEnded records the end of a call; the write is retried a few times so an
// end record is not lost to a transient error. It implements
// signalling.Recorder.
func (s *Store) CallEnded(r signalling.CallRecord) { s.write(r, StateEnded) }

// write stores r with one upsert (a single statement, quick on SQLite WAL),
// bounded by writeTimeout per attempt. Failures are logged, never returned:
// the call goes on whatever happens to its record.
func (s *Store) write(r signalling.CallRecord, st State) {
	id := string(r.ID)
	now := s.now()
	attempts := 1
	if st == StateEnded {
		attempts = 3
	}
	var err error
	for i := range attempts {
		if i > 0 {
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_, err = s.db.ExecContext(ctx, upsertSQL, recordArgs(r, st, now)...)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		s.log.Error().Err(err).Str("call", id).Str("state", string(st)).Msg("store: writing the call record failed")
	}
	s.mu.Lock()
	if st == StateActive {
		s.active[id] = struct{}{}
	} else {
		delete(s.active, id)
	}
	s.mu.Unlock()
}

// recordArgs lays out r in upsertSQL's column order.
func recordArgs(r signalling.CallRecord, st State, now time.Time) []any {
	cause := ""
	if st == StateEnded {
		cause = r.Cause.String()
	}
	return []any{
		string(r.ID), string(r.Direction), r.From.Number, r.From.MatrixUser, r.To.Number, r.To.MatrixUser,
		r.MatrixRoom, r.MatrixCallID, r.Trunk, r.SIPCallID,
		r.Started.UnixMilli(), ms(r.Answered), ms(r.Ended), r.Duration().Milliseconds(),
		cause, r.Detail, r.EndedBy, r.SIPStatus, r.MatrixReason, r.MatrixCodec, r.PhoneCodec,
		i64(r.MatrixPacketsIn), i64(r.MatrixPacketsLost), i64(r.PhonePacketsIn), i64(r.PhonePacketsLost),
		string(st), now.UnixMilli(),
		r.MatrixJitterMS, r.MatrixRTTMS, r.MatrixMOS, r.PhoneJitterMS, r.PhoneRTTMS, r.PhoneMOS, i64(r.PhoneLostByPeer),
	}
}

// i64 clamps a counter to the signed range the databases store.
func i64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// markInterrupted closes the records a previous process left active: state
// interrupted, ended at the last time the call was seen. It returns how many
// records it changed.
func (s *Store) markInterrupted(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE call_records SET
		state = $1,
		ended_ms = last_seen_ms,
		duration_ms = CASE WHEN answered_ms IS NULL OR last_seen_ms < answered_ms THEN 0 ELSE last_seen_ms - answered_ms END,
		cause = CASE WHEN cause = '' THEN $2 ELSE cause END,
		detail = CASE WHEN detail = '' THEN $3 ELSE detail END
		WHERE state = $4`,
		string(StateInterrupted), signalling.CauseUnknown.String(),
		"the gateway stopped during the call; ended is the last time it was seen", string(StateActive))
	if err != nil {
		return 0, fmt.Errorf("store: mark interrupted calls: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		s.log.Warn().Int64("calls", n).Msg("calls left active by a previous run marked interrupted")
	}
	return n, nil
}

// heartbeat refreshes last_seen of this process's active calls, so that
// after a crash their interrupted records end close to when the process died.
func (s *Store) heartbeat() {
	defer s.wg.Done()
	t := time.NewTicker(s.hbEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.touchActive()
		}
	}
}

// touchActive sets last_seen of every call this process has active to now.
func (s *Store) touchActive() {
	s.mu.Lock()
	ids := make([]any, 0, len(s.active)+2)
	ids = append(ids, s.now().UnixMilli(), string(StateActive))
	for id := range s.active {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	if len(ids) == 2 {
		return
	}
	ph := make([]string, len(ids)-2)
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `UPDATE call_records SET last_seen_ms = $1 WHERE state = $2 AND id IN (`+
		strings.Join(ph, ", ")+`)`, ids...)
	if err != nil {
		s.log.Warn().Err(err).Msg("store: refreshing last_seen of active calls failed")
	}
}

const selectColumns = `id, direction, caller_number, caller_user, callee_number, callee_user,
	matrix_room, matrix_call_id, trunk, sip_call_id, started_ms, answered_ms, ended_ms, duration_ms,
	cause, detail, ended_by, sip_status, matrix_reason, matrix_codec, phone_codec,
	matrix_packets_in, matrix_packets_lost, phone_packets_in, phone_packets_lost, state, last_seen_ms,
	matrix_jitter_ms, matrix_rtt_ms, matrix_mos, phone_jitter_ms, phone_rtt_ms, phone_mos, phone_lost_by_peer`

// scanRecord reads one row of selectColumns.
func scanRecord(row interface{ Scan(...any) error }) (Record, error) {
	var (
		r                      Record
		dir, st                string
		started, lastSeen      int64
		answered, ended        sql.NullInt64
		dur                    int64
		mIn, mLost, pIn, pLost int64
		lostByPeer             int64
	)
	err := row.Scan(&r.ID, &dir, &r.CallerNumber, &r.CallerUser, &r.CalleeNumber, &r.CalleeUser,
		&r.MatrixRoom, &r.MatrixCallID, &r.Trunk, &r.SIPCallID, &started, &answered, &ended, &dur,
		&r.Cause, &r.Detail, &r.EndedBy, &r.SIPStatus, &r.MatrixReason, &r.MatrixCodec, &r.PhoneCodec,
		&mIn, &mLost, &pIn, &pLost, &st, &lastSeen,
		&r.MatrixJitterMS, &r.MatrixRTTMS, &r.MatrixMOS, &r.PhoneJitterMS, &r.PhoneRTTMS, &r.PhoneMOS, &lostByPeer)
	if err != nil {
		return Record{}, err
	}
	r.Direction, r.State = signalling.Direction(dir), State(st)
	r.Started = time.UnixMilli(started).UTC()
	r.Answered, r.Ended = fromMS(answered), fromMS(ended)
	r.Duration = time.Duration(dur) * time.Millisecond
	r.MatrixPacketsIn, r.MatrixPacketsLost = uint64(max(mIn, 0)), uint64(max(mLost, 0))
	r.PhonePacketsIn, r.PhonePacketsLost = uint64(max(pIn, 0)), uint64(max(pLost, 0))
	r.PhoneLostByPeer = uint64(max(lostByPeer, 0))
	r.LastSeen = time.UnixMilli(lastSeen).UTC()
	return r, nil
}

// Call returns the record of one call; ok is false when there is none.
func (s *Store) Call(ctx context.Context, id string) (r Record, ok bool, err error) {
	r, err = scanRecord(s.db.QueryRowContext(ctx, `SELECT `+selectColumns+` FROM call_records WHERE id = $1`, id))
	if err == sql.ErrNoRows {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("store: read call %s: %w", id, err)
	}
	return r, true, nil
}

// ListCalls returns the records that match f, newest first.
func (s *Store) ListCalls(ctx context.Context, f Filter) ([]Record, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if !f.Since.IsZero() {
		add("started_ms >= $%d", f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		add("started_ms < $%d", f.Until.UnixMilli())
	}
	if f.Direction != "" {
		add("direction = $%d", string(f.Direction))
	}
	q := `SELECT ` + selectColumns + ` FROM call_records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY started_ms DESC, id`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list calls: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	return out, nil
}
