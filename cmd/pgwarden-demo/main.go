// Command pgwarden-demo runs a local three-node pgwarden cluster on
// loopback with an embedded etcd (what `make demo` starts), prints the
// cluster until Ctrl-C, then stops everything it started.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/launcher"
)

func main() {
	binary := flag.String("binary", "bin/pgwarden", "path of the built pgwarden binary")
	nodes := flag.Int("nodes", 3, "number of members")
	ttl := flag.Int("ttl", 10, "leader lease ttl in seconds")
	verbose := flag.Bool("v", false, "also print every daemon's log lines")
	withCitus := flag.Bool("citus", false, "a Citus cluster: a coordinator group and two worker groups of two members each (needs the Citus extension installed)")
	flag.Parse()

	bin, err := filepath.Abs(*binary)
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(bin); err != nil {
		fail(fmt.Errorf("pgwarden binary not found (run `make build` first): %w", err))
	}
	opts := launcher.Options{Binary: bin, Nodes: *nodes, Scope: "demo", TTL: *ttl, LoopWait: 2, RetryTimeout: 3}
	if *withCitus {
		if ok, why := launcher.CitusAvailable(opts.BinDir); !ok {
			fmt.Fprintf(os.Stderr, "pgwarden-demo: the Citus demo needs the Citus extension for PostgreSQL 15, and it is not installed (%s).\n"+
				"Install Citus (https://github.com/citusdata/citus, or your distribution's package) and run `make demo-citus` again.\n", why)
			os.Exit(2)
		}
		opts.Scope, opts.Nodes = "citus-demo", 6
		opts.CitusGroups = []int{0, 0, 1, 1, 2, 2}
		opts.Synchronous = true
	}
	if *verbose {
		opts.LogTo = os.Stdout
	}
	c, err := launcher.New(opts)
	if err != nil {
		fail(err)
	}
	stopping := make(chan os.Signal, 2)
	signal.Notify(stopping, os.Interrupt, syscall.SIGTERM)
	defer c.Stop()

	fmt.Printf("pgwarden demo: data and logs in %s\n", c.Dir)
	if err := c.Start(); err != nil {
		c.Stop()
		fail(err)
	}
	fmt.Printf("embedded etcd at %s; starting %d members...\n", c.EtcdURL(), len(c.Nodes))
	done := make(chan error, 1)
	go func() {
		if *withCitus {
			_, err := c.WaitGroupsHealthy(3 * time.Minute)
			done <- err
			return
		}
		_, err := c.WaitHealthy(3 * time.Minute)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			fmt.Fprintf(os.Stderr, "daemon logs: %s/*.log\n", c.Dir)
			c.Stop()
			os.Exit(1)
		}
	case <-stopping:
		fmt.Println("\nstopping...")
		return
	}
	fmt.Println()
	last := c.Table()
	fmt.Print(last)
	if *withCitus {
		citusHelp(c)
	} else {
		help(c)
	}
	fmt.Println("The table below is reprinted whenever it changes. Ctrl-C stops everything.")

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stopping:
			fmt.Println("\nstopping every daemon and PostgreSQL...")
			return
		case <-tick.C:
			t := c.Table()
			if t != last {
				fmt.Printf("\n%s\n%s", time.Now().Format("15:04:05"), t)
				last = t
			}
		}
	}
}

func citusHelp(c *launcher.Cluster) {
	co := max(c.GroupPrimary(0), 0)
	w := max(c.GroupPrimary(1), 0)
	fmt.Println()
	fmt.Println("The Citus cluster is up: a coordinator group and two worker groups, each a primary and a streaming standby.")
	fmt.Println("The coordinator's leader keeps pg_dist_node pointing at every group's primary. Try:")
	fmt.Printf("  psql 'host=127.0.0.1 port=%d user=postgres password=postgres-secret dbname=citus' -c 'SELECT nodeid, groupid, nodename, nodeport, noderole FROM pg_dist_node ORDER BY 2, 5'\n", c.Nodes[co].PGPort)
	fmt.Printf("  psql ... -c \"CREATE TABLE t (k int, v int); SELECT create_distributed_table('t', 'k')\"\n")
	fmt.Printf("  bin/pgwardenctl -c %s list                        # every group\n", c.Nodes[co].ConfigPath)
	fmt.Printf("  bin/pgwardenctl -c %s switchover --group 1 --force  # the coordinator holds the group's queries meanwhile\n", c.Nodes[co].ConfigPath)
	fmt.Printf("  kill -9 %d %d    # kill worker group 1's primary (daemon and postmaster); watch pg_dist_node follow the failover\n",
		c.DaemonPID(w), c.PostmasterPID(w))
	fmt.Printf("  tail -f %s/*.log\n", c.Dir)
}

func help(c *launcher.Cluster) {
	p := c.Primary()
	fmt.Println()
	fmt.Println("The cluster is up: one primary and streaming replicas. Try:")
	fmt.Printf("  curl -s %s/cluster            # every member as the REST API sees it\n", c.APIURL(0))
	fmt.Printf("  psql 'host=127.0.0.1 port=%d user=postgres password=postgres-secret dbname=postgres'\n", c.Nodes[max(p, 0)].PGPort)
	if p >= 0 {
		fmt.Printf("  kill -9 %d %d    # kill the primary's daemon and postmaster, then watch a replica take over\n",
			c.DaemonPID(p), c.PostmasterPID(p))
	}
	fmt.Printf("  tail -f %s/node*.log\n", c.Dir)
	fmt.Printf("  bin/pgwardenctl -c %s list               # or: switchover, pause, edit-config, history\n", c.Nodes[0].ConfigPath)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pgwarden-demo: %v\n", err)
	os.Exit(1)
}
