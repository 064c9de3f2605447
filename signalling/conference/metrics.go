package conference

import "github.com/prometheus/client_golang/prometheus"

// metrics are the conference metrics.
type metrics struct {
	active       prometheus.Gauge
	participants prometheus.Gauge
	joins        *prometheus.CounterVec
	pinFailures  prometheus.Counter
	pinLockouts  prometheus.Counter
	lateTicks    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_conferences_active", Help: "Conference calls in progress (with at least one participant).",
		}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_conference_participants", Help: "Participants seated in conference calls.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_conference_joins_total", Help: "Participants seated, by how they came: matrix, dial_in, dial_out, header.",
		}, []string{"via"}),
		pinFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_conference_pin_failures_total", Help: "Wrong PINs entered at the dial-in prompt.",
		}),
		pinLockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_conference_pin_lockouts_total", Help: "Dial-ins refused because the caller entered too many wrong PINs recently.",
		}),
		lateTicks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_conference_mixer_late_ticks_total", Help: "Mixer ticks that started more than a frame late (an overloaded core), counted when a conference ends.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.participants, m.joins, m.pinFailures, m.pinLockouts, m.lateTicks)
	}
	return m
}
