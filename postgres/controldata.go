package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ControlData runs pg_controldata on the data directory (as the OS user,
// in the C locale) and returns the fields the HA loop needs. It works
// whether or not the server runs, but what it reports for a running server
// is only as fresh as the last checkpoint.
func (i *Instance) ControlData() (ControlData, error) {
	if err := i.checkAccess(); err != nil {
		return ControlData{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, err := i.run(ctx, "pg_controldata", []string{"-D", i.s.DataDir}, "LC_ALL=C", "LANG=C", "LANGUAGE=C")
	if err != nil {
		return ControlData{}, err
	}
	return parseControlData(string(out))
}

func parseControlData(out string) (ControlData, error) {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var cd ControlData
	var err error
	cd.SystemID = fields["Database system identifier"]
	cd.State = fields["Database cluster state"]
	if cd.SystemID == "" || cd.State == "" {
		return cd, fmt.Errorf("pg_controldata: unexpected output %q", tailLines(out, 5))
	}
	if cd.CheckpointLSN, err = parseLSN(fields["Latest checkpoint location"]); err != nil {
		return cd, fmt.Errorf("pg_controldata: latest checkpoint location: %w", err)
	}
	if cd.CheckpointTLI, err = strconv.Atoi(fields["Latest checkpoint's TimeLineID"]); err != nil {
		return cd, fmt.Errorf("pg_controldata: latest checkpoint's TimeLineID: %w", err)
	}
	if cd.MinRecoveryLSN, err = parseLSN(fields["Minimum recovery ending location"]); err != nil {
		return cd, fmt.Errorf("pg_controldata: minimum recovery ending location: %w", err)
	}
	if cd.MinRecoveryTLI, err = strconv.Atoi(fields["Min recovery ending loc's timeline"]); err != nil {
		return cd, fmt.Errorf("pg_controldata: min recovery ending loc's timeline: %w", err)
	}
	// Both are absent from very old pg_controldata output; treat that as
	// "no".
	if v, ok := fields["Data page checksum version"]; ok {
		if cd.DataChecksumVersion, err = strconv.Atoi(v); err != nil {
			return cd, fmt.Errorf("pg_controldata: data page checksum version: %w", err)
		}
	}
	cd.WALLogHints = fields["wal_log_hints setting"] == "on"
	return cd, nil
}
