package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// healthMetrics exports each call's media health when it ends: it is a
// signalling.Recorder next to the database, fed the same end record.
type healthMetrics struct {
	mos, loss, jitter, rtt *prometheus.HistogramVec
	dead                   *prometheus.CounterVec
}

func newHealthMetrics(reg prometheus.Registerer) *healthMetrics {
	m := &healthMetrics{
		mos: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_call_mos",
			Help:    "E-model MOS estimate of the audio received from each side, at call end.",
			Buckets: []float64{1.5, 2, 2.5, 3, 3.5, 3.8, 4, 4.2, 4.3, 4.4, 4.5},
		}, []string{"side"}),
		loss: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_call_packet_loss_ratio",
			Help:    "Fraction of the packets from each side that never arrived, at call end.",
			Buckets: []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2},
		}, []string{"side"}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_call_jitter_seconds",
			Help:    "Interarrival jitter (RFC 3550) of the stream from each side, at call end.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16},
		}, []string{"side"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_call_rtt_seconds",
			Help:    "Round trip to the trunk's media from RTCP (LSR/DLSR), at call end; calls without RTCP are not observed.",
			Buckets: []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8},
		}, []string{"side"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_dead_media_hangups_total",
			Help: "Calls ended because a side sent no RTP for media.dead_media_timeout.",
		}, []string{"side"}),
	}
	reg.MustRegister(m.mos, m.loss, m.jitter, m.rtt, m.dead)
	registerWebRTCMetrics(reg)
	return m
}

// registerWebRTCMetrics exports the WebRTC media path's packet counts
// (media.WebRTCTotals: calls that have ended).
func registerWebRTCMetrics(reg prometheus.Registerer) {
	counter := func(name, help string, v func(media.ReceiveStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(media.WebRTCTotals())) })
	}
	reg.MustRegister(
		counter("gateway_webrtc_rtp_fast_received_total", "RTP packets from Matrix clients read and decrypted by the gateway's fast path (ended calls).",
			func(s media.ReceiveStats) uint64 { return s.Fast }),
		counter("gateway_webrtc_rtp_pion_received_total", "RTP packets from Matrix clients that came through pion's pipeline (TURN relay pairs, pair switches; ended calls).",
			func(s media.ReceiveStats) uint64 { return s.Pion }),
		counter("gateway_webrtc_rtp_fast_sent_total", "RTP packets to Matrix clients sent on the fast path (ended calls).",
			func(s media.ReceiveStats) uint64 { return s.SentFast }),
		counter("gateway_webrtc_srtp_auth_failures_total", "SRTP packets from Matrix clients' addresses that failed authentication, dropped (ended calls).",
			func(s media.ReceiveStats) uint64 { return s.AuthFailed }),
		counter("gateway_webrtc_srtp_replayed_total", "SRTP packets dropped as replayed or too old (ended calls).",
			func(s media.ReceiveStats) uint64 { return s.Replayed }),
		counter("gateway_webrtc_rtp_ring_dropped_total", "RTP packets dropped because a call's receive ring was full (ended calls).",
			func(s media.ReceiveStats) uint64 { return s.Dropped }),
	)
}

// CallStarted implements signalling.Recorder.
func (m *healthMetrics) CallStarted(signalling.CallRecord) {}

// CallAnswered implements signalling.Recorder.
func (m *healthMetrics) CallAnswered(signalling.CallRecord) {}

// CallEnded observes the health of each side that was measured.
func (m *healthMetrics) CallEnded(r signalling.CallRecord) {
	m.observe("matrix", r.MatrixMOS, r.MatrixPacketsIn, r.MatrixPacketsLost, r.MatrixJitterMS, r.MatrixRTTMS)
	m.observe("phone", r.PhoneMOS, r.PhonePacketsIn, r.PhonePacketsLost, r.PhoneJitterMS, r.PhoneRTTMS)
	switch r.DeadMedia {
	case "":
	case "matrix":
		m.dead.WithLabelValues("matrix").Inc()
	default:
		m.dead.WithLabelValues("phone").Inc()
	}
}

func (m *healthMetrics) observe(side string, mos float64, in, lost uint64, jitterMS, rttMS float64) {
	if mos <= 0 {
		return // the side never sent media
	}
	m.mos.WithLabelValues(side).Observe(mos)
	if in+lost > 0 {
		m.loss.WithLabelValues(side).Observe(float64(lost) / float64(in+lost))
	}
	m.jitter.WithLabelValues(side).Observe(jitterMS / 1000)
	if rttMS > 0 {
		m.rtt.WithLabelValues(side).Observe(rttMS / 1000)
	}
}
