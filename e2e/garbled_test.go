package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Garbage written into the cluster's keys by another tool is logged and
// survived: no daemon exits, the cluster stays healthy and can still fail
// over.
func TestGarbledEtcdValuesSurvived(t *testing.T) {
	c, p := startCluster(t, nil)
	cli := etcdClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for k, v := range map[string]string{
		"members/intruder": `{"role": "primary", "conn_url": `,
		"config":           `{"ttl": "not a number"`,
		"status":           `optime=12`,
		"failover":         `[`,
		"history":          `{{`,
		"sync":             `nope`,
	} {
		if _, err := cli.Put(ctx, "/service/e2e/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for i := range c.Nodes {
		if c.DaemonPID(i) == 0 {
			t.Fatalf("%s exited after garbled values\n%s", c.Nodes[i].Name, readLog(t, c, i))
		}
	}
	if _, err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readLog(t, c, p), "intruder") {
		t.Error("the garbled member value was not logged")
	}
	// Failover still works.
	if err := c.KillNode(p, true); err != nil {
		t.Fatal(err)
	}
	np, _ := waitNewPrimary(t, c, p, 30*time.Second)
	t.Logf("failover to %s with garbled keys in etcd", c.Nodes[np].Name)
	if n := strings.Count(readLog(t, c, np), "intruder"); n > 3 {
		t.Errorf("the garbled member value was logged %d times; once is enough", n)
	}
}
