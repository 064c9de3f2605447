package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// cdrCmd prints or exports call records from the configured database. It is
// safe to run beside a running gateway: it only reads.
func cdrCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cdr", flag.ContinueOnError)
	path := fs.String("c", "gateway.yaml", "configuration `file` naming the database")
	format := fs.String("format", "table", "output `format`: table, csv or json")
	since := fs.String("since", "", "only calls started in the last `DURATION` (like 24h) or since a date (2006-01-02 or RFC 3339)")
	until := fs.String("until", "", "only calls started before this `TIME` (same forms as -since)")
	direction := fs.String("direction", "", "only calls going `WAY`: to_phone or to_matrix")
	limit := fs.Int("limit", 0, "at most `N` calls, newest first; 0 = all")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gateway cdr [-c FILE] [--format table|csv|json] [--since 24h] [--until TIME] [--direction to_phone|to_matrix] [--limit N]\n\nPrints or exports call records, newest first. Times are UTC.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	now := time.Now()
	f := store.Filter{Limit: *limit, Direction: signalling.Direction(*direction)}
	var err error
	if f.Since, err = parseSince(*since, now); err != nil {
		fmt.Fprintf(stderr, "gateway cdr: -since: %v\n", err)
		return 2
	}
	if f.Until, err = parseSince(*until, now); err != nil {
		fmt.Fprintf(stderr, "gateway cdr: -until: %v\n", err)
		return 2
	}
	switch f.Direction {
	case "", signalling.DirectionToPhone, signalling.DirectionToMatrix:
	default:
		fmt.Fprintf(stderr, "gateway cdr: -direction must be to_phone or to_matrix, got %q\n", *direction)
		return 2
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		fmt.Fprintf(stderr, "gateway cdr: -format must be table, csv or json, got %q\n", *format)
		return 2
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gateway cdr: %v\n", err)
		return 1
	}
	st, err := openStore(cfg.Database, zerolog.Nop(), true)
	if err != nil {
		fmt.Fprintf(stderr, "gateway cdr: %v\n", err)
		return 1
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := st.ListCalls(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "gateway cdr: %v\n", err)
		return 1
	}
	switch *format {
	case "csv":
		err = writeCDRCSV(stdout, recs)
	case "json":
		err = writeCDRJSON(stdout, recs)
	default:
		err = writeCDRTable(stdout, recs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gateway cdr: %v\n", err)
		return 1
	}
	return 0
}

// parseSince reads a duration back from now ("24h") or a point in time
// (2006-01-02, RFC 3339); "" is no bound.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("duration must be positive")
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor a time (2006-01-02, RFC 3339)", s)
}

// cdrColumns are the CSV header and the JSON keys, in order.
var cdrColumns = []string{
	"id", "direction", "state", "caller_number", "caller_user", "callee_number", "callee_user",
	"started", "answered", "ended", "duration_s", "cause", "detail", "ended_by",
	"sip_status", "matrix_reason", "trunk", "sip_call_id", "matrix_room", "matrix_call_id",
	"matrix_codec", "phone_codec", "matrix_packets_in", "matrix_packets_lost",
	"phone_packets_in", "phone_packets_lost",
	"matrix_jitter_ms", "matrix_rtt_ms", "matrix_mos", "phone_jitter_ms", "phone_rtt_ms", "phone_mos", "phone_lost_by_peer",
}

// cdrFields lays out a record in cdrColumns order; times are RFC 3339 UTC
// with milliseconds, "" when not reached.
func cdrFields(r store.Record) []string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	return []string{
		r.ID, string(r.Direction), string(r.State), r.CallerNumber, r.CallerUser, r.CalleeNumber, r.CalleeUser,
		cdrTime(r.Started), cdrTime(r.Answered), cdrTime(r.Ended), strconv.FormatFloat(r.Duration.Seconds(), 'f', 3, 64),
		r.Cause, r.Detail, r.EndedBy, strconv.Itoa(r.SIPStatus), r.MatrixReason, r.Trunk, r.SIPCallID,
		r.MatrixRoom, r.MatrixCallID, r.MatrixCodec, r.PhoneCodec,
		u(r.MatrixPacketsIn), u(r.MatrixPacketsLost), u(r.PhonePacketsIn), u(r.PhonePacketsLost),
		f(r.MatrixJitterMS, 1), f(r.MatrixRTTMS, 1), f(r.MatrixMOS, 2), f(r.PhoneJitterMS, 1), f(r.PhoneRTTMS, 1), f(r.PhoneMOS, 2),
		u(r.PhoneLostByPeer),
	}
}

func cdrTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func writeCDRCSV(w io.Writer, recs []store.Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(cdrColumns); err != nil {
		return err
	}
	for _, r := range recs {
		if err := cw.Write(cdrFields(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cdrJSON is one record in the JSON export.
type cdrJSON struct {
	ID                string  `json:"id"`
	Direction         string  `json:"direction"`
	State             string  `json:"state"`
	CallerNumber      string  `json:"caller_number,omitempty"`
	CallerUser        string  `json:"caller_user,omitempty"`
	CalleeNumber      string  `json:"callee_number,omitempty"`
	CalleeUser        string  `json:"callee_user,omitempty"`
	Started           string  `json:"started"`
	Answered          string  `json:"answered,omitempty"`
	Ended             string  `json:"ended,omitempty"`
	DurationSeconds   float64 `json:"duration_s"`
	Cause             string  `json:"cause,omitempty"`
	Detail            string  `json:"detail,omitempty"`
	EndedBy           string  `json:"ended_by,omitempty"`
	SIPStatus         int     `json:"sip_status,omitempty"`
	MatrixReason      string  `json:"matrix_reason,omitempty"`
	Trunk             string  `json:"trunk,omitempty"`
	SIPCallID         string  `json:"sip_call_id,omitempty"`
	MatrixRoom        string  `json:"matrix_room,omitempty"`
	MatrixCallID      string  `json:"matrix_call_id,omitempty"`
	MatrixCodec       string  `json:"matrix_codec,omitempty"`
	PhoneCodec        string  `json:"phone_codec,omitempty"`
	MatrixPacketsIn   uint64  `json:"matrix_packets_in"`
	MatrixPacketsLost uint64  `json:"matrix_packets_lost"`
	PhonePacketsIn    uint64  `json:"phone_packets_in"`
	PhonePacketsLost  uint64  `json:"phone_packets_lost"`
	MatrixJitterMS    float64 `json:"matrix_jitter_ms"`
	MatrixRTTMS       float64 `json:"matrix_rtt_ms"`
	MatrixMOS         float64 `json:"matrix_mos"`
	PhoneJitterMS     float64 `json:"phone_jitter_ms"`
	PhoneRTTMS        float64 `json:"phone_rtt_ms"`
	PhoneMOS          float64 `json:"phone_mos"`
	PhoneLostByPeer   uint64  `json:"phone_lost_by_peer"`
}

func writeCDRJSON(w io.Writer, recs []store.Record) error {
	out := make([]cdrJSON, 0, len(recs))
	for _, r := range recs {
		out = append(out, cdrJSON{
			ID: r.ID, Direction: string(r.Direction), State: string(r.State),
			CallerNumber: r.CallerNumber, CallerUser: r.CallerUser, CalleeNumber: r.CalleeNumber, CalleeUser: r.CalleeUser,
			Started: cdrTime(r.Started), Answered: cdrTime(r.Answered), Ended: cdrTime(r.Ended),
			DurationSeconds: float64(r.Duration.Milliseconds()) / 1000,
			Cause:           r.Cause, Detail: r.Detail, EndedBy: r.EndedBy, SIPStatus: r.SIPStatus, MatrixReason: r.MatrixReason,
			Trunk: r.Trunk, SIPCallID: r.SIPCallID, MatrixRoom: r.MatrixRoom, MatrixCallID: r.MatrixCallID,
			MatrixCodec: r.MatrixCodec, PhoneCodec: r.PhoneCodec,
			MatrixPacketsIn: r.MatrixPacketsIn, MatrixPacketsLost: r.MatrixPacketsLost,
			PhonePacketsIn: r.PhonePacketsIn, PhonePacketsLost: r.PhonePacketsLost,
			MatrixJitterMS: r.MatrixJitterMS, MatrixRTTMS: r.MatrixRTTMS, MatrixMOS: r.MatrixMOS,
			PhoneJitterMS: r.PhoneJitterMS, PhoneRTTMS: r.PhoneRTTMS, PhoneMOS: r.PhoneMOS, PhoneLostByPeer: r.PhoneLostByPeer,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeCDRTable prints one line per call for people.
func writeCDRTable(w io.Writer, recs []store.Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED (UTC)\tDIRECTION\tFROM\tTO\tDURATION\tSTATE\tCAUSE\tSIP\tTRUNK\tCODECS\tMOS\tDETAIL")
	party := func(number, user string) string {
		switch {
		case number != "" && user != "":
			return user + " (" + number + ")"
		case user != "":
			return user
		}
		return number
	}
	for _, r := range recs {
		dur := "-"
		if !r.Answered.IsZero() {
			dur = r.Duration.Round(time.Second).String()
		}
		sipStatus := ""
		if r.SIPStatus != 0 {
			sipStatus = strconv.Itoa(r.SIPStatus)
		}
		codecs := strings.Trim(r.MatrixCodec+" | "+r.PhoneCodec, " |")
		mos := "-"
		if r.MatrixMOS > 0 || r.PhoneMOS > 0 {
			mos = fmt.Sprintf("%.1f | %.1f", r.MatrixMOS, r.PhoneMOS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Started.UTC().Format("2006-01-02 15:04:05"), r.Direction,
			party(r.CallerNumber, r.CallerUser), party(r.CalleeNumber, r.CalleeUser),
			dur, r.State, r.Cause, sipStatus, r.Trunk, codecs, mos, r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(recs) == 0 {
		_, err := fmt.Fprintln(w, "(no calls)")
		return err
	}
	return nil
}
