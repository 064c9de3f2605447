package turn

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics. Relayed traffic is summed
// from per-allocation counters at scrape time, so the relay path touches no
// shared counter.
type metrics struct {
	authFailures  *prometheus.CounterVec
	quotaRefusals *prometheus.CounterVec
	peerRefusals  prometheus.Counter
	s             *Server

	allocations, allocationsTotal, bytes, packets, dropped, fast, noPerm *prometheus.Desc
}

func newMetrics(s *Server) *metrics {
	return &metrics{
		s: s,
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_turn_auth_failures_total", Help: "TURN requests refused for their credentials (401/441), by reason.",
		}, []string{"reason"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_turn_quota_refusals_total", Help: "TURN allocations refused by a quota: user (486) or total (508).",
		}, []string{"quota"}),
		peerRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_turn_peer_refusals_total", Help: "TURN permissions and channel binds refused for a denied peer address (403).",
		}),
		allocations:      prometheus.NewDesc("gateway_turn_allocations", "TURN allocations in use.", nil, nil),
		allocationsTotal: prometheus.NewDesc("gateway_turn_allocations_total", "TURN allocations made.", nil, nil),
		bytes:            prometheus.NewDesc("gateway_turn_relayed_bytes_total", "Payload bytes relayed, by direction (to_peer, to_client).", []string{"direction"}, nil),
		packets:          prometheus.NewDesc("gateway_turn_relayed_packets_total", "Packets relayed, by direction (to_peer, to_client).", []string{"direction"}, nil),
		dropped:          prometheus.NewDesc("gateway_turn_dropped_packets_total", "Packets dropped for exceeding an allocation's bandwidth cap.", nil, nil),
		fast:             prometheus.NewDesc("gateway_turn_fast_path_packets_total", "Packets relayed by the fast path (without pion), by direction (to_peer, to_client).", []string{"direction"}, nil),
		noPerm:           prometheus.NewDesc("gateway_turn_no_permission_packets_total", "Packets dropped because the peer had no permission.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.authFailures.Describe(ch)
	m.quotaRefusals.Describe(ch)
	m.peerRefusals.Describe(ch)
	for _, d := range []*prometheus.Desc{m.allocations, m.allocationsTotal, m.bytes, m.packets, m.dropped, m.fast, m.noPerm} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.authFailures.Collect(ch)
	m.quotaRefusals.Collect(ch)
	m.peerRefusals.Collect(ch)
	t, live, created := m.s.track.totals()
	ch <- prometheus.MustNewConstMetric(m.allocations, prometheus.GaugeValue, float64(live))
	ch <- prometheus.MustNewConstMetric(m.allocationsTotal, prometheus.CounterValue, float64(created))
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(t.toPeerBytes), "to_peer")
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(t.toClientBytes), "to_client")
	ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(t.toPeerPackets), "to_peer")
	ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(t.toClientPackets), "to_client")
	ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(t.dropped))
	ch <- prometheus.MustNewConstMetric(m.fast, prometheus.CounterValue, float64(t.fastToPeer), "to_peer")
	ch <- prometheus.MustNewConstMetric(m.fast, prometheus.CounterValue, float64(t.fastToClient), "to_client")
	ch <- prometheus.MustNewConstMetric(m.noPerm, prometheus.CounterValue, float64(t.noPermission))
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Allocations in use and made since start.
	Allocations, AllocationsTotal int
	// Packets and bytes relayed client -> peer and peer -> client.
	ToPeerPackets, ToPeerBytes, ToClientPackets, ToClientBytes uint64
	// DroppedPackets exceeded a bandwidth cap.
	DroppedPackets uint64
	// FastToPeerPackets and FastToClientPackets are the part of
	// ToPeerPackets and ToClientPackets relayed by the fast path (channel
	// bindings and Send indications handled without pion).
	FastToPeerPackets, FastToClientPackets uint64
	// NoPermissionPackets were dropped for want of a permission (RFC 8656 section 9).
	NoPermissionPackets uint64
	// AuthFailures by reason: unknown_user, expired, bad_password, wrong_realm, wrong_credentials.
	AuthFailures map[string]int
	// QuotaRefusals by quota: user, total.
	QuotaRefusals map[string]int
	// PeerRefusals counts 403 answers for denied peers.
	PeerRefusals int
}
