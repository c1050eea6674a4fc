package restapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/status"
)

func TestMetrics(t *testing.T) {
	cases := []struct {
		name string
		node func() *status.Node
		want []string
		not  []string
	}{
		{
			name: "primary",
			node: primaryNode,
			want: []string{
				`patroni_version{name="node0",scope="pbench"} 40104`,
				`patroni_postgres_running{name="node0",scope="pbench"} 1`,
				`patroni_postmaster_start_time{name="node0",scope="pbench"} 1.795929642796341e+09`,
				`patroni_primary{name="node0",scope="pbench"} 1`,
				`patroni_xlog_location{name="node0",scope="pbench"} 6.7108944e+07`,
				`patroni_standby_leader{name="node0",scope="pbench"} 0`,
				`patroni_replica{name="node0",scope="pbench"} 0`,
				`patroni_sync_standby{name="node0",scope="pbench"} 0`,
				`patroni_xlog_received_location{name="node0",scope="pbench"} 0`,
				`patroni_xlog_replayed_location{name="node0",scope="pbench"} 0`,
				`patroni_xlog_replayed_timestamp{name="node0",scope="pbench"} 0`,
				`patroni_xlog_paused{name="node0",scope="pbench"} 0`,
				`patroni_postgres_streaming{name="node0",scope="pbench"} 0`,
				`patroni_postgres_in_archive_recovery{name="node0",scope="pbench"} 0`,
				`patroni_postgres_server_version{name="node0",scope="pbench"} 150018`,
				`patroni_cluster_unlocked{name="node0",scope="pbench"} 0`,
				`patroni_postgres_timeline{name="node0",scope="pbench"} 1`,
				`patroni_dcs_last_seen{name="node0",scope="pbench"} 1.795929655e+09`,
				`patroni_is_paused{name="node0",scope="pbench"} 0`,
				`patroni_pending_restart{name="node0",scope="pbench"} 0`,
				`patroni_postgres_state{name="node0",scope="pbench"} 5`,
				`# TYPE patroni_xlog_location counter`,
				`# TYPE patroni_primary gauge`,
			},
		},
		{
			name: "replica",
			node: replicaNode,
			want: []string{
				`patroni_primary{name="node2",scope="pbench"} 0`,
				`patroni_replica{name="node2",scope="pbench"} 1`,
				`patroni_xlog_location{name="node2",scope="pbench"} 0`,
				`patroni_xlog_received_location{name="node2",scope="pbench"} 6.7108944e+07`,
				`patroni_xlog_replayed_location{name="node2",scope="pbench"} 6.7108944e+07`,
				`patroni_xlog_replayed_timestamp{name="node2",scope="pbench"} 1.795929651284215e+09`,
				`patroni_postgres_streaming{name="node2",scope="pbench"} 1`,
			},
		},
		{
			name: "stopped",
			node: stoppedNode,
			want: []string{
				`patroni_postgres_running{name="node2",scope="pbench"} 0`,
				`patroni_postgres_server_version{name="node2",scope="pbench"} 0`,
				`patroni_postgres_state{name="node2",scope="pbench"} 12`,
				`patroni_replica{name="node2",scope="pbench"} 1`,
			},
			// as Patroni: only exported when the server version is known
			not: []string{"patroni_postgres_streaming", "patroni_postgres_in_archive_recovery"},
		},
		{
			name: "nothing published",
			node: nilNode,
			not:  []string{"patroni_"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.node(), nil)
			rec := do(s, http.MethodGet, "/metrics")
			if rec.Code != http.StatusOK || !isPlain(rec.Header()) {
				t.Fatalf("GET /metrics = %d %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			body := rec.Body.String()
			lines := make(map[string]bool)
			for _, l := range strings.Split(body, "\n") {
				lines[l] = true
			}
			for _, w := range tc.want {
				if !lines[w] {
					t.Errorf("missing line %q in:\n%s", w, body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("unexpected %q in:\n%s", n, body)
				}
			}
			for _, method := range []string{http.MethodHead, http.MethodOptions} {
				if r := do(s, method, "/metrics"); r.Code != http.StatusOK || r.Body.Len() != 0 {
					t.Errorf("%s /metrics = %d %q", method, r.Code, r.Body)
				}
			}
		})
	}
}

// Every metric Patroni 4.1.4 exports has the same name and type here.
func TestMetricsCoverPatroniSample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(samplesDir, "GET-metrics.txt"))
	if err != nil {
		t.Skipf("Patroni samples not available: %v", err)
	}
	body := do(newTestServer(t, primaryNode(), nil), http.MethodGet, "/metrics").Body.String()
	typeLine := regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`)
	ours := make(map[string]string)
	for _, m := range typeLine.FindAllStringSubmatch(body, -1) {
		ours[m[1]] = m[2]
	}
	for _, m := range typeLine.FindAllStringSubmatch(string(data), -1) {
		if got, ok := ours[m[1]]; !ok {
			t.Errorf("metric %s (%s) missing", m[1], m[2])
		} else if got != m[2] {
			t.Errorf("metric %s is a %s, Patroni's is a %s", m[1], got, m[2])
		}
	}
}

func TestUnsafeRoutesAuth(t *testing.T) {
	auth := &config.BasicAuth{Username: "admin", Password: "s3cret"}
	basic := func(user, pass string) string {
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization")
	}
	cases := []struct {
		name   string
		auth   *config.BasicAuth
		header string
		want   int
	}{
		{"no auth configured", nil, "", http.StatusOK},
		{"no header", auth, "", http.StatusUnauthorized},
		{"wrong password", auth, basic("admin", "guess"), http.StatusUnauthorized},
		{"wrong user", auth, basic("root", "s3cret"), http.StatusUnauthorized},
		{"password prefix", auth, basic("admin", "s3cre"), http.StatusUnauthorized},
		{"not basic", auth, "Bearer abc", http.StatusUnauthorized},
		{"garbage", auth, "Basic !!!", http.StatusUnauthorized},
		{"right", auth, basic("admin", "s3cret"), http.StatusOK},
		{"scheme case", auth, "basic " + strings.TrimPrefix(basic("admin", "s3cret"), "Basic "), http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, primaryNode(), tc.auth)
			called := false
			s.HandleUnsafe("post", "/test-unsafe", func(w http.ResponseWriter, r *http.Request) {
				called = true
				_, _ = io.WriteString(w, "restarted")
			})
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			rec := do(s, http.MethodPost, "/test-unsafe", hdr...)
			if rec.Code != tc.want {
				t.Fatalf("POST /test-unsafe = %d %q, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				if called {
					t.Error("handler ran without authentication")
				}
				if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic realm=") {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if !isPlain(rec.Header()) || rec.Body.Len() == 0 {
					t.Errorf("want a plain-text reason, got %q %q", rec.Header().Get("Content-Type"), rec.Body)
				}
			} else if !called || rec.Body.String() != "restarted" {
				t.Errorf("handler not reached: %q", rec.Body)
			}
			// Read-only endpoints never need credentials.
			if r := do(s, http.MethodGet, "/primary"); r.Code != http.StatusOK {
				t.Errorf("GET /primary = %d", r.Code)
			}
		})
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, primaryNode(), nil)
	s.HandleUnsafe(http.MethodPost, "/switchover", func(w http.ResponseWriter, r *http.Request) {})
	s.HandleUnsafe(http.MethodDelete, "/switchover", func(w http.ResponseWriter, r *http.Request) {})
	cases := []struct {
		method, target string
		want           int
		allow          string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/primary/extra", http.StatusNotFound, ""},
		{http.MethodOptions, "/nope", http.StatusNotFound, ""},
		{http.MethodPost, "/primary", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{http.MethodDelete, "/patroni", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{http.MethodPut, "/", http.StatusMethodNotAllowed, "GET, HEAD, OPTIONS"},
		{http.MethodGet, "/switchover", http.StatusMethodNotAllowed, "POST, DELETE"},
	}
	for _, tc := range cases {
		rec := do(s, tc.method, tc.target)
		if rec.Code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.target, rec.Code, tc.want)
			continue
		}
		if !isPlain(rec.Header()) || rec.Body.Len() == 0 {
			t.Errorf("%s %s: want a plain-text reason, got %q %q", tc.method, tc.target, rec.Header().Get("Content-Type"), rec.Body)
		}
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.target, got, tc.allow)
		}
	}
}

// Over a real connection, as HAProxy's "option httpchk" probes: OPTIONS /
// answers a status line and headers with no body.
func TestServeOverTCP(t *testing.T) {
	b := new(status.Board)
	s := New(Options{Board: b})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()

	probe := func(req string) (statusLine string, body string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.Status, string(data)
	}

	if st, body := probe("OPTIONS / HTTP/1.0\r\n\r\n"); st != "503 Service Unavailable" || body != "" {
		t.Errorf("before publishing: %q %q", st, body)
	}
	n := primaryNode()
	now := time.Now()
	n.Published, n.LeaderUntil = now, now.Add(time.Minute)
	b.Publish(n)
	if st, body := probe("OPTIONS / HTTP/1.0\r\n\r\n"); st != "200 OK" || body != "" {
		t.Errorf("OPTIONS / on the leader: %q %q", st, body)
	}
	if st, body := probe("GET /replica HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); st != "503 Service Unavailable" || !strings.HasPrefix(body, `{"state":"running"`) {
		t.Errorf("GET /replica on the leader: %q %q", st, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if err := s.ListenAndServe("127.0.0.1:0"); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("ListenAndServe after Shutdown = %v", err)
	}
}

func BenchmarkPrimaryHealth(b *testing.B) {
	s := newTestServer(b, primaryNode(), nil)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "/primary", nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("GET /primary = %d", rec.Code)
				return
			}
		}
	})
}

func BenchmarkPrimaryHealthOptions(b *testing.B) {
	s := newTestServer(b, primaryNode(), nil)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodOptions, "/", nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("OPTIONS / = %d", rec.Code)
				return
			}
		}
	})
}

func BenchmarkPatroniStatus(b *testing.B) {
	s := newTestServer(b, replicaNode(), nil)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "/patroni", nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("GET /patroni = %d", rec.Code)
				return
			}
		}
	})
}

// At debug level every request is logged with its status code.
func TestDebugRequestLog(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := new(status.Board)
	b.Publish(replicaNode())
	s := New(Options{Board: b, Logger: log, Now: func() time.Time { return t0 }})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodOptions, "/primary?x=1", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("OPTIONS /primary = %d", rec.Code)
	}
	if got := buf.String(); !strings.Contains(got, "method=OPTIONS") || !strings.Contains(got, "status=503") ||
		!strings.Contains(got, `uri="/primary?x=1"`) {
		t.Errorf("log = %q", got)
	}
}
