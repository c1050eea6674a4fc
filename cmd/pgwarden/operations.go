package main

import (
	"context"

	"github.com/pgwarden/pgwarden/ha"
	"github.com/pgwarden/pgwarden/restapi"
)

// operations adapts the HA loop to the REST API's Operations.
type operations struct {
	*ha.Loop
	reload func() error
}

func toRestart(r restapi.RestartRequest) ha.ScheduledRestart {
	return ha.ScheduledRestart{At: r.Schedule, RestartPending: r.RestartPending, Role: r.Role,
		PostgresVersion: r.PostgresVersion, Timeout: r.Timeout}
}

func (o operations) Restart(ctx context.Context, r restapi.RestartRequest) (bool, string) {
	return o.Loop.Restart(ctx, toRestart(r))
}

func (o operations) ScheduleRestart(r restapi.RestartRequest) bool {
	return o.Loop.ScheduleRestart(toRestart(r))
}

func (o operations) Reload() error { return o.reload() }
