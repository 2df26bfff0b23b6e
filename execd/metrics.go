package execd

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/execd-project/execd/frame"
)

// Metrics counts what a daemon does, for Prometheus. A nil *Metrics
// counts nothing. Labels are bounded sets (reasons, methods, kinds,
// classes), never user names or paths.
type Metrics struct {
	reg *prometheus.Registry

	conns          prometheus.Counter
	refused        *prometheus.CounterVec // by reason
	logins         *prometheus.CounterVec // by method, result
	loginDelay     prometheus.Histogram
	channels       *prometheus.CounterVec // by kind
	channelRefused *prometheus.CounterVec // by kind, code
	started        prometheus.Counter
	exited         *prometheus.CounterVec // by class
	bytes          *prometheus.CounterVec // by direction, stream
	transfers      *prometheus.HistogramVec
	quota          prometheus.Counter
}

// NewMetrics makes the daemon's metrics for srv, with Go's runtime and
// process metrics, in a registry of their own. Set it as srv.Metrics.
func NewMetrics(srv *Server, version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg}
	m.conns = prometheus.NewCounter(prometheus.CounterOpts{Name: "execd_connections_total", Help: "Connections accepted past admission."})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_connections_refused_total",
		Help: "Connections refused or ended before they were served, or ended when their login was revoked, by reason."}, []string{"reason"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_logins_total",
		Help: "Login attempts by method (publickey, password) and result (ok, failed, limit)."}, []string{"method", "result"})
	m.loginDelay = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "execd_login_throttle_seconds",
		Help: "Time logins waited in the throttle before being checked.", Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10}})
	m.channels = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_channels_total",
		Help: "Channels opened, by kind (exec, get, put, fs)."}, []string{"kind"})
	m.channelRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_channels_refused_total",
		Help: "Channel opens refused, by kind and error code."}, []string{"kind", "code"})
	m.started = prometheus.NewCounter(prometheus.CounterOpts{Name: "execd_commands_started_total", Help: "Commands started."})
	m.exited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_commands_exited_total",
		Help: "Commands ended, by class: success (status 0), failure (other status), signal, timeout."}, []string{"class"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "execd_bytes_total",
		Help: "Payload bytes by direction (in: from clients, out: to clients) and stream (stdin, stdout, stderr, file)."}, []string{"direction", "stream"})
	m.transfers = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "execd_transfer_duration_seconds",
		Help: "Durations of completed file transfers, by kind (get, put).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"kind"})
	m.quota = prometheus.NewCounter(prometheus.CounterOpts{Name: "execd_quota_refusals_total", Help: "Writes refused because a user's quota was full."})
	for _, c := range []prometheus.Collector{m.conns, m.refused, m.logins, m.loginDelay, m.channels, m.channelRefused,
		m.started, m.exited, m.bytes, m.transfers, m.quota} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "execd_build_info", Help: "Always 1; the version in its label.",
		ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 }))
	f(statusCollector{srv})
	return m
}

// statusCollector reports the gauges of Server.Status at each scrape.
type statusCollector struct{ srv *Server }

var (
	connsDesc    = prometheus.NewDesc("execd_connections_open", "Connections being served, logged in or not.", nil, nil)
	loggedDesc   = prometheus.NewDesc("execd_connections_logged_in", "Connections past their login.", nil, nil)
	channelsDesc = prometheus.NewDesc("execd_channels_open", "Open channels by kind.", []string{"kind"}, nil)
)

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsDesc
	ch <- loggedDesc
	ch <- channelsDesc
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Status()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(st.Connections))
	ch <- prometheus.MustNewConstMetric(loggedDesc, prometheus.GaugeValue, float64(st.LoggedIn))
	for _, k := range frame.Kinds() {
		ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(st.Channels[k.Name]), k.Name)
	}
}

// Handler serves /metrics, /healthz (the daemon is running) and /readyz
// (it accepts connections: listening, not shutting down).
func (m *Metrics) Handler(srv *Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "not ready: not listening, or shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

func (m *Metrics) connAccepted() {
	if m != nil {
		m.conns.Inc()
	}
}

func (m *Metrics) connRefused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// connRevoked counts a logged-in connection ended because its user's
// login no longer stands.
func (m *Metrics) connRevoked() { m.connRefused("revoked") }

// login counts a login attempt; a method the daemon does not know
// (the client names it) is counted as "other".
func (m *Metrics) login(method, result string) {
	if m == nil {
		return
	}
	if method != frame.AuthPublicKey && method != frame.AuthPassword {
		method = "other"
	}
	m.logins.WithLabelValues(method, result).Inc()
}

func (m *Metrics) throttled(d time.Duration) {
	if m != nil {
		m.loginDelay.Observe(d.Seconds())
	}
}

func (m *Metrics) channelOpened(kind string) {
	if m != nil {
		m.channels.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) channelRefusedWith(kind string, code frame.Code) {
	if m != nil {
		m.channelRefused.WithLabelValues(servedKind(kind), string(code)).Inc()
	}
}

func (m *Metrics) commandStarted() {
	if m != nil {
		m.started.Inc()
	}
}

// commandExited counts an exit by its class.
func (m *Metrics) commandExited(exit *frame.ExitMsg) {
	if m == nil {
		return
	}
	class := "success"
	switch {
	case exit.TimedOut:
		class = "timeout"
	case exit.Signal != "":
		class = "signal"
	case exit.Code != 0:
		class = "failure"
	}
	m.exited.WithLabelValues(class).Inc()
}

func (m *Metrics) addBytes(direction, stream string, n int64) {
	if m != nil && n > 0 {
		m.bytes.WithLabelValues(direction, stream).Add(float64(n))
	}
}

func (m *Metrics) transferred(kind string, d time.Duration) {
	if m != nil {
		m.transfers.WithLabelValues(kind).Observe(d.Seconds())
	}
}

func (m *Metrics) quotaRefused() {
	if m != nil {
		m.quota.Inc()
	}
}
