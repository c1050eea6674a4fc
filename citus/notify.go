package citus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

// Notifier sends a worker group leader's events to the coordinator
// group's leader (POST /citus on its REST API, found through its member
// key), as Patroni's workers do.
type Notifier struct {
	Group  int
	Name   string // this member
	Groups interface {
		SnapshotGroups(ctx context.Context) (map[int]*dcs.Cluster, int64, error)
	}
	// Username and Password are this member's restapi.authentication: the
	// coordinator's REST API takes the same credentials.
	Username, Password string
	HTTP               *http.Client
}

// Notify sends one event and waits for the coordinator's answer, within
// ctx. timeout and cooldown go into the event (how long the coordinator
// may hold its transaction open, and citus_update_node's lock_cooldown).
func (n *Notifier) Notify(ctx context.Context, typ string, timeout, cooldown time.Duration) error {
	if n.Group == 0 {
		return nil
	}
	groups, _, err := n.Groups.SnapshotGroups(ctx)
	if err != nil {
		return err
	}
	coord := groups[0]
	if coord == nil || coord.Leader == nil {
		return errors.New("the coordinator group has no leader")
	}
	m := coord.LeaderMember()
	if m == nil || m.APIURL == "" {
		return fmt.Errorf("the coordinator leader %s has no api_url", coord.Leader.Name)
	}
	u, err := url.Parse(m.APIURL)
	if err != nil {
		return fmt.Errorf("the coordinator leader's api_url %q: %w", m.APIURL, err)
	}
	u.Path, u.RawQuery = "/citus", ""
	body, _ := json.Marshal(Event{Type: typ, Group: n.Group, Leader: n.Name,
		Timeout: timeout.Seconds(), Cooldown: cooldown.Seconds()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.Username != "" || n.Password != "" {
		req.SetBasicAuth(n.Username, n.Password)
	}
	client := n.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
