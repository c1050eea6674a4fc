package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDynamicFromMap(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want Dynamic
	}{
		{"nil map gives defaults", nil, DefaultDynamic()},
		{"float64 numbers as decoded from JSON", map[string]any{
			"ttl": float64(40), "loop_wait": float64(5), "retry_timeout": float64(12),
			"maximum_lag_on_failover": float64(2097152),
			"synchronous_mode":        true,
			"postgresql": map[string]any{"parameters": map[string]any{
				"max_connections": float64(150), "checkpoint_completion_target": 0.9,
				"hot_standby": true, "wal_level": "replica", "old_setting": nil,
			}},
		}, Dynamic{
			TTL: 40 * time.Second, LoopWait: 5 * time.Second, RetryTimeout: 12 * time.Second,
			MaximumLagOnFailover: 2097152, SynchronousMode: true,
			SynchronousNodeCount: 1, UseSlots: true, UsePgRewind: true, MemberSlotsTTL: 30 * time.Minute,
			Parameters: map[string]string{"max_connections": "150", "checkpoint_completion_target": "0.9",
				"hot_standby": "on", "wal_level": "replica"},
			Raw: map[string]any{
				"ttl": 40, "loop_wait": 5, "retry_timeout": 12, "maximum_lag_on_failover": 2097152,
				"synchronous_mode": true,
				"postgresql": map[string]any{"parameters": map[string]any{
					"max_connections": 150, "checkpoint_completion_target": 0.9,
					"hot_standby": true, "wal_level": "replica", "old_setting": nil,
				}},
			},
		}},
		{"duration strings", map[string]any{"ttl": "1m", "loop_wait": "2s", "retry_timeout": "3"}, Dynamic{
			TTL: time.Minute, LoopWait: 2 * time.Second, RetryTimeout: 3 * time.Second,
			MaximumLagOnFailover: DefaultMaximumLagOnFailover, Parameters: map[string]string{},
			SynchronousNodeCount: 1, UseSlots: true, UsePgRewind: true, MemberSlotsTTL: 30 * time.Minute,
			Raw: map[string]any{"ttl": "1m", "loop_wait": "2s", "retry_timeout": "3"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DynamicFromMap(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestDynamicFromJSON(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(`{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,
		"postgresql":{"parameters":{"max_wal_senders":10,"wal_keep_size":"1GB"},"use_pg_rewind":true},
		"slots":{"s1":{"type":"physical"}}}`), &m); err != nil {
		t.Fatal(err)
	}
	d, err := DynamicFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if d.TTL != 30*time.Second || d.Parameters["max_wal_senders"] != "10" || d.Parameters["wal_keep_size"] != "1GB" {
		t.Errorf("got %+v", d)
	}
	if got := d.Raw["slots"].(map[string]any)["s1"].(map[string]any)["type"]; got != "physical" {
		t.Errorf("Raw slots = %#v", got)
	}
	if got := d.Raw["ttl"]; got != 30 {
		t.Errorf("Raw ttl = %#v (%T), want int 30", got, got)
	}
	// The input is not modified.
	if _, isFloat := m["ttl"].(float64); !isFloat {
		t.Errorf("input ttl changed to %T", m["ttl"])
	}
}

func TestDynamicFromMapErrors(t *testing.T) {
	cases := []struct {
		name  string
		in    map[string]any
		wants []string
	}{
		{"ttl bool", map[string]any{"ttl": true}, []string{`ttl: expected a number of seconds or a duration such as "500ms", got true`}},
		{"loop_wait text", map[string]any{"loop_wait": "soon"}, []string{`loop_wait: expected a number of seconds`, `got "soon"`}},
		{"retry_timeout mapping", map[string]any{"retry_timeout": map[string]any{}}, []string{"retry_timeout: expected a number of seconds", "got a mapping"}},
		{"maximum_lag_on_failover fraction", map[string]any{"maximum_lag_on_failover": 1.5}, []string{"maximum_lag_on_failover: expected a number of bytes, got 1.5"}},
		{"maximum_lag_on_failover negative", map[string]any{"maximum_lag_on_failover": float64(-1)}, []string{"maximum_lag_on_failover: must not be negative"}},
		{"postgresql not a mapping", map[string]any{"postgresql": "x"}, []string{`postgresql: expected a mapping, got "x"`}},
		{"parameters not a mapping", map[string]any{"postgresql": map[string]any{"parameters": []any{"a"}}},
			[]string{"postgresql.parameters: expected a mapping of parameter names to values, got a list"}},
		{"parameter value mapping", map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"work_mem": map[string]any{"a": 1}}}},
			[]string{"postgresql.parameters.work_mem: expected a string, number or boolean, got a mapping"}},
		{"ttl rule", map[string]any{"ttl": float64(20), "loop_wait": float64(10), "retry_timeout": float64(10)},
			[]string{"ttl: ttl (20s) must be at least loop_wait + 2*retry_timeout = 10s + 2*10s = 30s"}},
		{"loop_wait zero", map[string]any{"loop_wait": float64(0)}, []string{"loop_wait: must be greater than 0"}},
		{"two errors", map[string]any{"ttl": "x", "loop_wait": "y"}, []string{"ttl: expected", "loop_wait: expected"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DynamicFromMap(tc.in)
			if err == nil {
				t.Fatalf("expected an error containing %q", tc.wants)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDynamicValidate(t *testing.T) {
	d := DefaultDynamic()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	d.RetryTimeout = 11 * time.Second
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "ttl (30s) must be at least") {
		t.Errorf("Validate() = %v, want the ttl rule", err)
	}
}

func TestSettingString(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{"128MB", "128MB"}, {true, "on"}, {false, "off"}, {100, "100"}, {int64(7), "7"},
		{0.9, "0.9"}, {1e-5, "0.00001"}, {float64(2e6), "2000000"}, {json.Number("42"), "42"},
	}
	for _, tc := range cases {
		got, err := settingString(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("settingString(%#v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDynamicReplicationSettings(t *testing.T) {
	d, err := DynamicFromMap(map[string]any{
		"synchronous_mode": "on", "synchronous_mode_strict": true, "synchronous_node_count": float64(2),
		"member_slots_ttl": "10m", "pause": true,
		"postgresql": map[string]any{"use_slots": false, "use_pg_rewind": false},
		"slots":      map[string]any{"keep_me": map[string]any{"type": "physical"}, "logi": map[string]any{"type": "logical", "database": "db", "plugin": "pgoutput"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !d.SynchronousMode || !d.SynchronousModeStrict || d.SynchronousNodeCount != 2 || d.MemberSlotsTTL != 10*time.Minute ||
		!d.Pause || d.UseSlots || d.UsePgRewind || d.Slots["keep_me"].Type != "physical" || d.Slots["logi"].Plugin != "pgoutput" {
		t.Fatalf("got %+v", d)
	}
	for _, bad := range []map[string]any{
		{"synchronous_mode": "quorum"},
		{"synchronous_node_count": float64(0)},
		{"slots": map[string]any{"Bad-Name": nil}},
		{"slots": map[string]any{"l": map[string]any{"type": "logical"}}},
		{"postgresql": map[string]any{"use_slots": "maybe"}},
	} {
		if _, err := DynamicFromMap(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
