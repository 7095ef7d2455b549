package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's Prometheus metrics, on their own registry so several servers
// (tests) can coexist in one process.
type Metrics struct {
	Registry    *prometheus.Registry
	Requests    *prometheus.CounterVec
	Latency     *prometheus.HistogramVec
	InFlight    prometheus.Gauge
	Diagnoses   *prometheus.CounterVec
	QueueDepth  prometheus.Gauge
	BatchSize   prometheus.Histogram
	ModelTime   prometheus.Histogram
	ModelErrors prometheus.Counter
	ModelMemory *prometheus.GaugeVec
	RateLimited prometheus.Counter
	Rejected    *prometheus.CounterVec
}

// NewMetrics registers every metric (plus Go runtime and process collectors).
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acdtcm_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "acdtcm_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "acdtcm_http_in_flight_requests", Help: "HTTP requests being served.",
		}),
		Diagnoses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acdtcm_diagnoses_total", Help: "Diagnoses produced, by severity label and model version.",
		}, []string{"severity", "model_version"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "acdtcm_inference_queue_depth", Help: "Requests waiting for the model.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "acdtcm_inference_batch_size", Help: "Inputs per model call.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		ModelTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "acdtcm_inference_batch_duration_seconds", Help: "Duration of one batched model call.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		ModelErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "acdtcm_inference_errors_total", Help: "Model calls that failed.",
		}),
		ModelMemory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "acdtcm_model_memory_bytes", Help: "Memory held by the loaded model's parameters.",
		}, []string{"model", "version"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "acdtcm_rate_limited_total", Help: "Requests refused by the per-client rate limit.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acdtcm_rejected_total", Help: "Requests refused before the model, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.InFlight, m.Diagnoses, m.QueueDepth, m.BatchSize,
		m.ModelTime, m.ModelErrors, m.ModelMemory, m.RateLimited, m.Rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// observer adapts the metrics to the batcher's events.
func (m *Metrics) observer() BatchObserver {
	return BatchObserver{
		QueueDepth: func(n int) { m.QueueDepth.Set(float64(n)) },
		BatchSize:  func(n int) { m.BatchSize.Observe(float64(n)) },
		ModelTime: func(d time.Duration, _ int, err error) {
			m.ModelTime.Observe(d.Seconds())
			if err != nil {
				m.ModelErrors.Inc()
			}
		},
	}
}

func (m *Metrics) observeRequest(route, method string, code int, d time.Duration) {
	m.Requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.Latency.WithLabelValues(route).Observe(d.Seconds())
}
