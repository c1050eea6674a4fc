package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/testutil"
	"github.com/pgwarden/pgwarden/launcher"
)

// callAPI sends one REST request to node i and returns the status code and
// body.
func callAPI(t *testing.T, c *launcher.Cluster, i int, method, path, body string, auth ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.APIURL(i)+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	cl := &http.Client{Timeout: 60 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s on node %d: %v", method, path, i, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

// startAnyWriter writes to node first, and after each error to the next
// node in turn, so that it finds whichever node is primary (see ackWriter).
func startAnyWriter(c *launcher.Cluster, first int, table string) *ackWriter {
	return startAckWriter(table, func(ctx context.Context, fails int) (*pgx.Conn, error) {
		return connect(ctx, c, (first+fails)%len(c.Nodes))
	})
}

// movedAside lists data directories a node moved aside (re-clones).
func movedAside(c *launcher.Cluster, i int) []string {
	m, _ := filepath.Glob(c.Nodes[i].DataDir + ".pgwarden-old-*")
	return m
}

func otherThan(c *launcher.Cluster, p int) int { return (p + 1) % len(c.Nodes) }

func TestSwitchoverKeepsEveryWriteAndRejoinsWithoutRewind(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE sw(id int primary key)")
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // member keys show the standbys streaming
	cand := otherThan(c, p)
	w := startAnyWriter(c, p, "sw")
	time.Sleep(time.Second)
	body := fmt.Sprintf(`{"leader":%q,"candidate":%q}`, c.Nodes[p].Name, c.Nodes[cand].Name)
	code, msg := callAPI(t, c, p, "POST", "/switchover", body)
	if code != 200 {
		t.Fatalf("POST /switchover = %d %q", code, msg)
	}
	if want := fmt.Sprintf("Successfully switched over to %q", c.Nodes[cand].Name); msg != want {
		t.Errorf("POST /switchover said %q, want %q", msg, want)
	}
	time.Sleep(2 * time.Second)
	ids, gap := w.stopIDs()
	t.Logf("MEASURED switchover write gap (client writing every 10 ms, straight to PostgreSQL): %s", gap.Round(time.Millisecond))
	if np := c.Primary(); np != cand {
		t.Fatalf("primary is node %d after the switchover, want %d\n%s", np, cand, c.Table())
	}
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatalf("old primary did not rejoin: %v\n%s", err, c.Table())
	}
	if len(ids) == 0 {
		t.Fatal("no write was acknowledged")
	}
	missing := missingIDs(t, c, cand, "sw", ids)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged writes missing on the new primary: %v", len(missing), missing[:min(10, len(missing))])
	}
	waitRow(t, c, p, "sw", ids[len(ids)-1], 30*time.Second)
	if m := movedAside(c, p); len(m) > 0 {
		t.Errorf("the old primary was re-cloned (%v); a switchover must rejoin it as it is", m)
	}
	if b := readLog(t, c, p); strings.Contains(b, "pg_rewind") || strings.Contains(b, "re-cloning") {
		t.Errorf("the old primary rewound or re-cloned after a clean switchover")
	}
}

// query1 returns the first column of the first row of sql on node i as text.
func query1(t *testing.T, c *launcher.Cluster, i int, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, c, i)
	if err != nil {
		t.Fatalf("node %d: %v", i, err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("node %d: %s: %v", i, sql, err)
	}
	return s
}

// eventually is testutil.Eventually.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

const apiUser, apiPass = "admin", "admin-secret"

func withAuth(o *launcher.Options) { o.APIUser, o.APIPassword = apiUser, apiPass }

func TestOperationsRefusals(t *testing.T) {
	c, p := startCluster(t, func(o *launcher.Options) {
		withAuth(o)
		o.ExtraConfig = map[int]string{2: "tags:\n  nofailover: true"}
	})
	r := otherThan(c, p)
	if r == 2 {
		r = (r + 1) % 3
	}
	if r == p {
		r = (p + 2) % 3
	}
	leader := c.Nodes[p].Name
	cases := []struct {
		name, method, path, body string
		auth                     bool
		code                     int
		msg                      string // substring
	}{
		{"no credentials", "POST", "/switchover", `{"leader":"` + leader + `"}`, false, 401, ""},
		{"malformed JSON", "POST", "/switchover", `{"leader":`, true, 400, ""},
		{"wrong leader", "POST", "/switchover", `{"leader":"nosuch","candidate":"` + c.Nodes[r].Name + `"}`, true, 412, "leader name does not match"},
		{"unknown candidate", "POST", "/switchover", `{"leader":"` + leader + `","candidate":"nosuch"}`, true, 412, "candidate"},
		{"failover without candidate", "POST", "/failover", `{"leader":"` + leader + `"}`, true, 400, "candidate"},
		{"scheduled in the past", "POST", "/switchover", `{"leader":"` + leader + `","scheduled_at":"2020-01-01T00:00:00+00:00"}`, true, 422, "past"},
		{"reinitialize the leader", "POST", "/reinitialize", `{}`, true, 503, "leader"},
		{"restart with an unknown filter", "POST", "/restart", `{"bogus":1}`, true, 400, "bogus"},
		{"restart with a role that does not match", "POST", "/restart", `{"role":"replica"}`, true, 503, "conditions"},
		{"config patch that breaks the ttl rule", "PATCH", "/config", `{"ttl":1}`, true, 400, "ttl"},
		{"config patch without credentials", "PATCH", "/config", `{"ttl":20}`, false, 401, ""},
	}
	if c.Nodes[2].Name != leader {
		cases = append(cases, struct {
			name, method, path, body string
			auth                     bool
			code                     int
			msg                      string
		}{"candidate tagged nofailover", "POST", "/switchover", `{"leader":"` + leader + `","candidate":"` + c.Nodes[2].Name + `"}`, true, 412, "nofailover"})
	}
	for _, tc := range cases {
		var auth []string
		if tc.auth {
			auth = []string{apiUser, apiPass}
		}
		code, msg := callAPI(t, c, p, tc.method, tc.path, tc.body, auth...)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %s %s = %d %q, want %d with %q", tc.name, tc.method, tc.path, code, msg, tc.code, tc.msg)
		}
	}
	if np := c.Primary(); np != p {
		t.Errorf("the primary moved (node %d -> %d) although every request was refused", p, np)
	}
}

func TestScheduledSwitchoverFiresAndCancelledOneDoesNot(t *testing.T) {
	c, p := startCluster(t, nil)
	time.Sleep(2 * time.Second)
	leader := c.Nodes[p].Name
	// One scheduled, then cancelled: it must not fire.
	at := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339)
	if code, msg := callAPI(t, c, p, "POST", "/switchover", `{"leader":"`+leader+`","scheduled_at":"`+at+`"}`); code != 202 {
		t.Fatalf("scheduling: %d %q", code, msg)
	}
	if code, msg := callAPI(t, c, p, "POST", "/switchover", `{"leader":"`+leader+`","scheduled_at":"`+at+`"}`); code < 400 {
		t.Errorf("a second scheduled switchover was accepted: %d %q", code, msg)
	}
	if code, msg := callAPI(t, c, p, "DELETE", "/switchover", ""); code != 200 {
		t.Fatalf("cancelling: %d %q", code, msg)
	}
	if code, _ := callAPI(t, c, p, "DELETE", "/switchover", ""); code != 404 {
		t.Errorf("cancelling twice answered %d, want 404", code)
	}
	time.Sleep(6 * time.Second)
	if np := c.Primary(); np != p {
		t.Fatalf("a cancelled switchover fired: primary moved to node %d", np)
	}
	// One scheduled, left alone: it fires at its time, not before.
	when := time.Now().Add(5 * time.Second).Truncate(time.Second)
	cand := c.Nodes[otherThan(c, p)].Name
	body := fmt.Sprintf(`{"leader":%q,"candidate":%q,"scheduled_at":%q}`, leader, cand, when.UTC().Format(time.RFC3339))
	if code, msg := callAPI(t, c, p, "POST", "/switchover", body); code != 202 {
		t.Fatalf("scheduling: %d %q", code, msg)
	}
	eventually(t, 5*time.Second, "GET /cluster shows the scheduled switchover", func() string {
		if _, doc := callAPI(t, c, p, "GET", "/cluster", ""); !strings.Contains(doc, "scheduled_switchover") {
			return doc
		}
		return ""
	})
	np, changed := waitNewPrimary(t, c, p, 30*time.Second)
	if changed.Before(when) {
		t.Errorf("the switchover fired at %s, before its time %s", changed.Format(time.RFC3339Nano), when.Format(time.RFC3339))
	}
	if c.Nodes[np].Name != cand {
		t.Errorf("new primary %s, want the candidate %s", c.Nodes[np].Name, cand)
	}
	t.Logf("MEASURED scheduled switchover: new primary answering %s after the scheduled time", changed.Sub(when).Round(time.Millisecond))
}

func TestPauseStopsFailoverAndResumeRestoresIt(t *testing.T) {
	c, p := startCluster(t, nil)
	if code, msg := callAPI(t, c, p, "PATCH", "/config", `{"pause":true}`); code != 200 {
		t.Fatalf("PATCH /config pause: %d %q", code, msg)
	}
	for i := range c.Nodes {
		eventually(t, 10*time.Second, "pause shown in GET /patroni", func() string {
			_, doc := callAPI(t, c, i, "GET", "/patroni", "")
			if !strings.Contains(doc, `"pause":true`) {
				return doc
			}
			return ""
		})
	}
	// Refusals of a paused cluster.
	at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if code, msg := callAPI(t, c, p, "POST", "/switchover", `{"leader":"`+c.Nodes[p].Name+`","scheduled_at":"`+at+`"}`); code != 400 || !strings.Contains(msg, "paused") {
		t.Errorf("scheduled switchover while paused: %d %q, want 400 naming the paused state", code, msg)
	}
	if code, msg := callAPI(t, c, p, "POST", "/switchover", `{"leader":"`+c.Nodes[p].Name+`"}`); code != 400 || !strings.Contains(msg, "paused") {
		t.Errorf("switchover without candidate while paused: %d %q, want 400", code, msg)
	}
	pm := c.PostmasterPID(p)
	if pm == 0 {
		t.Fatal("no postmaster")
	}
	if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for time.Since(killed) < 3*time.Duration(c.Opts.TTL)*time.Second {
		// The killed primary's own /primary goes down within a moment
		// (its postmaster-death poll); no other node may come up.
		if np := c.Primary(); np >= 0 && (np != p || time.Since(killed) > 2*time.Second) {
			t.Fatalf("node %d answers /primary in maintenance mode %s after the primary's PostgreSQL was killed", np, time.Since(killed).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c.PostmasterPID(p) != 0 {
		t.Fatal("the killed primary was restarted in maintenance mode")
	}
	// Health checks still answer truthfully: no node claims /primary.
	for i := range c.Nodes {
		if code := c.HealthCode(context.Background(), i, "/primary", 2*time.Second); code == 200 {
			t.Errorf("node %d answers 200 on /primary while paused with the primary dead", i)
		}
	}
	if code, msg := callAPI(t, c, otherThan(c, p), "PATCH", "/config", `{"pause":null}`); code != 200 {
		t.Fatalf("PATCH /config resume: %d %q", code, msg)
	}
	resumed := time.Now()
	np, err := c.WaitHealthy(90 * time.Second)
	if err != nil {
		t.Fatalf("no healthy cluster after resume: %v\n%s", err, c.Table())
	}
	t.Logf("MEASURED resume -> healthy cluster: %s (primary %s)", time.Since(resumed).Round(time.Millisecond), c.Nodes[np].Name)
}

func TestFailoverToCandidateWithoutLeader(t *testing.T) {
	c, p := startCluster(t, nil)
	if code, msg := callAPI(t, c, p, "PATCH", "/config", `{"pause":true}`); code != 200 {
		t.Fatalf("pause: %d %q", code, msg)
	}
	time.Sleep(2 * time.Second)
	if err := c.KillNode(p, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(c.Opts.TTL+1) * time.Second) // the leader key expires; nobody takes it while paused
	cand := otherThan(c, p)
	if np := c.Primary(); np >= 0 {
		t.Fatalf("node %d took over while paused", np)
	}
	code, msg := callAPI(t, c, cand, "POST", "/failover", fmt.Sprintf(`{"candidate":%q}`, c.Nodes[cand].Name))
	if code != 200 || !strings.Contains(msg, c.Nodes[cand].Name) {
		t.Fatalf("POST /failover = %d %q", code, msg)
	}
	eventually(t, 20*time.Second, "candidate is primary", func() string {
		if c.Primary() != cand {
			return c.Table()
		}
		return ""
	})
	if code, msg := callAPI(t, c, cand, "PATCH", "/config", `{"pause":null}`); code != 200 {
		t.Fatalf("resume: %d %q", code, msg)
	}
}

func TestConfigParameterReachesEveryNodeAndRestartApplies(t *testing.T) {
	c, p := startCluster(t, nil)
	code, doc := callAPI(t, c, p, "PATCH", "/config", `{"postgresql":{"parameters":{"work_mem":"7MB","max_connections":50}}}`)
	if code != 200 || !strings.Contains(doc, "7MB") {
		t.Fatalf("PATCH /config = %d %s", code, doc)
	}
	for i := range c.Nodes {
		eventually(t, 15*time.Second, fmt.Sprintf("work_mem on node %d", i), func() string {
			if v := query1(t, c, i, "SHOW work_mem"); v != "7MB" {
				return "work_mem = " + v
			}
			return ""
		})
		eventually(t, 15*time.Second, fmt.Sprintf("pending restart on node %d", i), func() string {
			_, doc := callAPI(t, c, i, "GET", "/patroni", "")
			if !strings.Contains(doc, `"pending_restart":true`) {
				return doc
			}
			return ""
		})
	}
	// Replicas first: a standby needs max_connections >= the primary's.
	order := []int{}
	for i := range c.Nodes {
		if i != p {
			order = append(order, i)
		}
	}
	order = append(order, p)
	for _, i := range order {
		before := c.PostmasterPID(i)
		code, msg := callAPI(t, c, i, "POST", "/restart", `{"restart_pending":true}`)
		if code != 200 {
			t.Fatalf("POST /restart on node %d = %d %q", i, code, msg)
		}
		if after := c.PostmasterPID(i); after == before || after == 0 {
			t.Errorf("node %d: postmaster %d -> %d, want a new one", i, before, after)
		}
		if v := query1(t, c, i, "SHOW max_connections"); v != "50" {
			t.Errorf("node %d: max_connections = %s after the restart, want 50", i, v)
		}
	}
	if np := c.Primary(); np != p {
		t.Errorf("restarting the primary moved it (node %d -> %d)", p, np)
	}
	if code, msg := callAPI(t, c, p, "POST", "/restart", `{"restart_pending":true}`); code != 503 {
		t.Errorf("a second restart_pending restart answered %d %q, want 503 (nothing pending)", code, msg)
	}
	if code, msg := callAPI(t, c, p, "POST", "/reload", ""); code != 202 {
		t.Errorf("POST /reload = %d %q", code, msg)
	}
}

func TestReinitializeReplica(t *testing.T) {
	c, p := startCluster(t, nil)
	r := otherThan(c, p)
	marker := filepath.Join(c.Nodes[r].DataDir, "pgwarden-test-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	exec1(t, c, p, "CREATE TABLE ri(id int)")
	exec1(t, c, p, "INSERT INTO ri VALUES (1)")
	code, msg := callAPI(t, c, r, "POST", "/reinitialize", `{"force":true}`)
	if code != 200 {
		t.Fatalf("POST /reinitialize = %d %q", code, msg)
	}
	eventually(t, 60*time.Second, "replica reinitialized and streaming", func() string {
		if _, err := os.Stat(marker); err == nil {
			return "marker still there"
		}
		st, err := c.Status(r)
		if err != nil || st.Role != "replica" || st.ReplicationState != "streaming" {
			return fmt.Sprintf("%+v %v", st, err)
		}
		return ""
	})
	waitRow(t, c, r, "ri", 1, 20*time.Second)
}

// A scheduled restart runs at its time; one cancelled with DELETE
// /restart does not.
func TestScheduledRestart(t *testing.T) {
	c, p := startCluster(t, nil)
	r := otherThan(c, p)
	at := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
	if code, msg := callAPI(t, c, r, "POST", "/restart", `{"schedule":"`+at+`"}`); code != 202 {
		t.Fatalf("scheduling: %d %q", code, msg)
	}
	if code, msg := callAPI(t, c, r, "POST", "/restart", `{"schedule":"`+at+`"}`); code != 409 {
		t.Errorf("a second scheduled restart: %d %q, want 409", code, msg)
	}
	if code, msg := callAPI(t, c, r, "DELETE", "/restart", ""); code != 200 {
		t.Fatalf("cancelling: %d %q", code, msg)
	}
	before := c.PostmasterPID(r)
	time.Sleep(5 * time.Second)
	if pid := c.PostmasterPID(r); pid != before {
		t.Fatalf("a cancelled restart ran (postmaster %d -> %d)", before, pid)
	}
	when := time.Now().Add(3 * time.Second).Truncate(time.Second)
	if code, msg := callAPI(t, c, r, "POST", "/restart", `{"schedule":"`+when.UTC().Format(time.RFC3339)+`"}`); code != 202 {
		t.Fatalf("scheduling: %d %q", code, msg)
	}
	eventually(t, 5*time.Second, "the scheduled restart shown in GET /patroni", func() string {
		if _, doc := callAPI(t, c, r, "GET", "/patroni", ""); !strings.Contains(doc, "scheduled_restart") {
			return doc
		}
		return ""
	})
	eventually(t, 20*time.Second, "the scheduled restart ran", func() string {
		if pid := c.PostmasterPID(r); pid == before || pid == 0 {
			return fmt.Sprintf("postmaster %d", pid)
		}
		return ""
	})
	if time.Now().Before(when) {
		t.Errorf("the restart ran before its time %s", when.Format(time.RFC3339))
	}
	if _, err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code, _ := callAPI(t, c, r, "DELETE", "/restart", ""); code != 404 {
		t.Errorf("DELETE /restart after it ran: %d, want 404", code)
	}
}
