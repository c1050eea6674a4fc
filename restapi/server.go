package restapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// Options configure a Server.
type Options struct {
	// Board is where the HA loop publishes the member status. Nil means a
	// board that is never published to: every health check answers 503.
	Board *status.Board
	// Auth, when non-nil, protects the routes added with HandleUnsafe with
	// HTTP basic authentication. Read-only endpoints are never protected.
	Auth *config.BasicAuth
	// Logger receives server errors (warn) and, at debug level, one line
	// per request. Nil discards.
	Logger *slog.Logger
	// Now is the clock used for lease, freshness and liveness decisions.
	// Default time.Now (which carries the monotonic reading that
	// status.Node's LeaderUntil and Published are compared with).
	Now func() time.Time
	// Ops backs the unsafe endpoints (POST /switchover, /failover,
	// /restart, /reinitialize, /reload, PATCH/PUT /config, DELETE
	// /switchover, /restart) and GET /config and /history. Nil: those
	// routes answer 503.
	Ops Operations
	// Citus, on a Citus coordinator, takes the workers' POST /citus
	// events. Nil: POST /citus answers 503.
	Citus CitusEvents
	// CitusGroups, on a member of a Citus cluster, reads every Citus
	// group (group -> its cluster, and the read's revision), for GET
	// /cluster to show the members of every group. Nil: GET /cluster shows
	// the members of the last snapshot of the member's own cluster.
	CitusGroups func(ctx context.Context) (map[int]*dcs.Cluster, int64, error)
}

// Timeouts of the HTTP server. Health checks are tiny requests; the limits
// only bound what a slow or malicious client can hold on to.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 45 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Server is the REST API of one member.
type Server struct {
	board *status.Board
	log   *slog.Logger
	now   func() time.Time
	ops   Operations
	citus CitusEvents
	// citusGroups reads every Citus group for GET /cluster (nil: not Citus).
	citusGroups func(ctx context.Context) (map[int]*dcs.Cluster, int64, error)

	// pollInterval and pollWindow override how often and for how long a
	// switchover's outcome is polled (0: defaultPollInterval, and
	// 2*max(10s, loop_wait) as Patroni). Tests shorten them.
	pollInterval time.Duration
	pollWindow   time.Duration
	syncWait     time.Duration // how long a switchover waits for a synchronous standby

	authEnabled bool
	authDigest  [sha256.Size]byte // sha256("user:password")

	router  *mux.Router
	handler http.Handler
	metrics http.Handler

	mu      sync.Mutex
	allowed map[string][]string // path -> methods, for the Allow header of 405s

	srv *http.Server
}

// New builds a Server. It does not listen; call Serve or ListenAndServe.
func New(opts Options) *Server {
	s := &Server{
		board:       opts.Board,
		log:         opts.Logger,
		now:         opts.Now,
		ops:         opts.Ops,
		citus:       opts.Citus,
		citusGroups: opts.CitusGroups,
		allowed:     make(map[string][]string),
	}
	if s.board == nil {
		s.board = new(status.Board)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Auth != nil {
		s.authEnabled = true
		s.authDigest = sha256.Sum256([]byte(opts.Auth.Username + ":" + opts.Auth.Password))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(s.board))
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})

	s.router = mux.NewRouter()
	s.router.NotFoundHandler = http.HandlerFunc(notFound)
	s.router.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	s.routes()
	s.opsRoutes()
	s.citusRoutes()
	s.handler = http.HandlerFunc(s.serveHTTP)

	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// safeMethods are the methods every read-only endpoint answers.
var safeMethods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}

// routes registers the read-only endpoints. The most frequently probed
// paths come first: gorilla/mux tries routes in registration order.
func (s *Server) routes() {
	s.health(kindPrimary, "/primary")
	s.health(kindReplica, "/replica")
	s.health(kindReadOnly, "/read-only")
	s.health(kindHealth, "/health")
	s.health(kindRoot, "/")
	s.health(kindPrimary, "/master")
	s.health(kindPrimary, "/read-write")
	s.health(kindLeader, "/leader")
	s.health(kindLiveness, "/liveness")
	s.health(kindReadiness, "/readiness")
	s.health(kindSync, "/sync")
	s.health(kindSync, "/synchronous")
	s.health(kindAsync, "/async")
	s.health(kindAsync, "/asynchronous")
	s.health(kindQuorum, "/quorum")
	s.health(kindReadOnlySync, "/read-only-sync")
	s.health(kindReadOnlySync, "/read-only-synchronous")
	s.health(kindReadOnlyQuorum, "/read-only-quorum")
	s.health(kindStandbyLeader, "/standby-leader")
	s.health(kindStandbyLeader, "/standby_leader")

	s.safe("/patroni", s.handlePatroni)
	s.safe("/cluster", s.handleCluster)
	s.safe("/metrics", s.handleMetrics)
}

func (s *Server) health(k kind, path string) {
	s.safe(path, func(w http.ResponseWriter, r *http.Request) { s.serveHealth(w, r, k) })
}

func (s *Server) safe(path string, h http.HandlerFunc) {
	s.router.HandleFunc(path, h).Methods(safeMethods...)
	s.allow(path, safeMethods...)
}

func (s *Server) allow(path string, methods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range methods {
		found := false
		for _, have := range s.allowed[path] {
			if have == m {
				found = true
				break
			}
		}
		if !found {
			s.allowed[path] = append(s.allowed[path], m)
		}
	}
}

// HandleUnsafe registers h for method and path (a gorilla/mux path
// template, e.g. "/restart" or "/failover"). The route always goes through
// basic authentication when Options.Auth is set; it is meant for the
// state-changing POST/PUT/PATCH/DELETE endpoints of the HA and operations
// code. Register routes before Serve: the router is not safe for
// registration while it serves requests.
func (s *Server) HandleUnsafe(method, path string, h http.HandlerFunc) {
	method = strings.ToUpper(method)
	s.router.Handle(path, s.requireAuth(h)).Methods(method)
	s.allow(path, method)
}

// Handler returns the HTTP handler of the API (the gorilla/mux router with
// the server's middleware), for tests or for mounting into another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on l until Shutdown. It returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on the TCP address addr ("127.0.0.1:8008") and
// calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Shutdown stops accepting connections and waits for the requests in
// flight to finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// serveHTTP is the outermost handler: the router, with a request log line
// at debug level (checked per request so that a level change applies at
// once; nothing is allocated for it when debug is off).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.router.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.router.ServeHTTP(rec, r)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "API request",
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("uri", r.RequestURI),
		slog.Int("status", rec.code),
		slog.Duration("took", time.Since(start)))
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Header values shared by all responses. net/http only reads them.
var (
	contentJSON  = []string{"application/json"}
	contentPlain = []string{"text/plain; charset=utf-8"}
	noSniff      = []string{"nosniff"}
)

// plainError answers code with a one-line plain-text reason.
func plainError(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	h["Content-Type"] = contentPlain
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(code)
	_, _ = w.Write([]byte(reason + "\n"))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	plainError(w, http.StatusNotFound, "not found: "+r.URL.Path)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	methods := s.allowed[r.URL.Path]
	s.mu.Unlock()
	if len(methods) > 0 {
		w.Header().Set("Allow", strings.Join(methods, ", "))
	}
	plainError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
}

// requireAuth wraps h with HTTP basic authentication when it is configured.
// The comparison hashes the presented "user:password" and compares digests
// in constant time, so neither the content nor the length of the
// credentials leaks through timing.
func (s *Server) requireAuth(h http.Handler) http.Handler {
	if !s.authEnabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := s.checkAuth(r.Header.Get("Authorization")); reason != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="pgwarden"`)
			plainError(w, http.StatusUnauthorized, reason)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkAuth returns "" when header carries the configured credentials, and
// the reason to refuse otherwise.
func (s *Server) checkAuth(header string) string {
	if header == "" {
		return "authentication required"
	}
	const prefix = "Basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "authentication required: only basic authentication is supported"
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "wrong credentials"
	}
	got := sha256.Sum256(raw)
	if subtle.ConstantTimeCompare(got[:], s.authDigest[:]) != 1 {
		return "wrong credentials"
	}
	return ""
}

// promErrorLog adapts the logger to promhttp's error logging.
type promErrorLog struct{ log *slog.Logger }

func (p promErrorLog) Println(v ...any) {
	p.log.Warn("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
