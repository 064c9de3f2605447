package signalling

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the call core's Prometheus metrics.
type Metrics struct {
	callsStarted  prometheus.Counter
	callsAnswered prometheus.Counter
	callsActive   prometheus.Gauge
	callsEnded    *prometheus.CounterVec
	callsRefused  *prometheus.CounterVec
	setupSeconds  *prometheus.HistogramVec
}

// NewMetrics makes the call metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		callsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_calls_started_total", Help: "Calls that passed authorisation and were dialled.",
		}),
		callsAnswered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_calls_answered_total", Help: "Calls answered and bridged.",
		}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_calls_active", Help: "Calls in progress.",
		}),
		callsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_calls_ended_total", Help: "Calls ended, by neutral hangup cause.",
		}, []string{"cause"}),
		callsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_calls_refused_total", Help: "Calls refused before dialling, by cause.",
		}, []string{"cause"}),
		setupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_call_setup_seconds",
			Help: "Time spent in the gateway setting calls up: stage ringing = call start to the far side alerting " +
				"(post-dial delay), stage answer = far side answered to our side answered and audio bridged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"direction", "stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.callsStarted, m.callsAnswered, m.callsActive, m.callsEnded, m.callsRefused, m.setupSeconds)
	}
	return m
}

func (m *Metrics) started()        { m.callsStarted.Inc(); m.callsActive.Inc() }
func (m *Metrics) answered()       { m.callsAnswered.Inc() }
func (m *Metrics) ended(c Cause)   { m.callsActive.Dec(); m.callsEnded.WithLabelValues(c.String()).Inc() }
func (m *Metrics) refused(c Cause) { m.callsRefused.WithLabelValues(c.String()).Inc() }

func (m *Metrics) setup(d Direction, stage string, took time.Duration) {
	m.setupSeconds.WithLabelValues(string(d), stage).Observe(took.Seconds())
}
