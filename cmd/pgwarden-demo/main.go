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
	flag.Parse()

	bin, err := filepath.Abs(*binary)
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(bin); err != nil {
		fail(fmt.Errorf("pgwarden binary not found (run `make build` first): %w", err))
	}
	opts := launcher.Options{Binary: bin, Nodes: *nodes, Scope: "demo", TTL: *ttl, LoopWait: 2, RetryTimeout: 3}
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
	fmt.Printf("embedded etcd at %s; starting %d members...\n", c.EtcdURL(), *nodes)
	done := make(chan error, 1)
	go func() { _, err := c.WaitHealthy(3 * time.Minute); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			fmt.Fprintf(os.Stderr, "daemon logs: %s/node*.log\n", c.Dir)
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

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pgwarden-demo: %v\n", err)
	os.Exit(1)
}
