package status

import (
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/postgres"
)

func TestIsRunningPrimary(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	primary := postgres.State{Running: true, Accepting: true}
	base := Node{IsLeader: true, LeaderUntil: t0.Add(3 * time.Second), Published: t0, TTL: 5 * time.Second, PG: primary}
	cases := []struct {
		name string
		mod  func(n *Node)
		at   time.Duration
		want bool
	}{
		{"leader, fresh, writable primary", func(*Node) {}, time.Second, true},
		{"leader belief expired", func(*Node) {}, 3 * time.Second, false},
		{"not leader", func(n *Node) { n.IsLeader = false }, 0, false},
		{"status older than ttl", func(n *Node) { n.LeaderUntil = t0.Add(time.Hour) }, 6 * time.Second, false},
		{"in recovery", func(n *Node) { n.PG.InRecovery = true }, 0, false},
		{"not accepting", func(n *Node) { n.PG.Accepting = false }, 0, false},
		{"not running", func(n *Node) { n.PG.Running = false }, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := base
			tc.mod(&n)
			if got := n.IsRunningPrimary(t0.Add(tc.at)); got != tc.want {
				t.Errorf("IsRunningPrimary = %v, want %v", got, tc.want)
			}
		})
	}
	var nilNode *Node
	if nilNode.IsRunningPrimary(t0) {
		t.Error("nil node is a primary")
	}
}
