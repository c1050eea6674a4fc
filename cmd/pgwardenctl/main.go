// Command pgwardenctl is pgwarden's command-line tool, the equivalent of
// patronictl: list, switchover, restart, edit-config and the other
// commands of package ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgwarden/pgwarden/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
