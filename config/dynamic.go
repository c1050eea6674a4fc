package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the dynamic configuration, as in Patroni.
const (
	DefaultTTL                  = 30 * time.Second
	DefaultLoopWait             = 10 * time.Second
	DefaultRetryTimeout         = 10 * time.Second
	DefaultMaximumLagOnFailover = 1048576
)

// DefaultDynamic returns the dynamic configuration used when neither
// bootstrap.dcs nor the DCS config key set anything.
func DefaultDynamic() Dynamic {
	return Dynamic{
		TTL:                  DefaultTTL,
		LoopWait:             DefaultLoopWait,
		RetryTimeout:         DefaultRetryTimeout,
		MaximumLagOnFailover: DefaultMaximumLagOnFailover,
		SynchronousNodeCount: 1,
		UseSlots:             true,
		UsePgRewind:          true,
		MemberSlotsTTL:       DefaultMemberSlotsTTL,
		Parameters:           map[string]string{},
		Raw:                  map[string]any{},
	}
}

// DefaultMemberSlotsTTL is how long the leader keeps the replication slot
// of a member that is gone (Patroni 4's member_slots_ttl).
const DefaultMemberSlotsTTL = 30 * time.Minute

// PermanentSlot is an entry of the dynamic configuration's slots: a
// replication slot the leader keeps whatever the members are.
type PermanentSlot struct {
	Type     string // "physical" or "logical"
	Database string // logical only
	Plugin   string // logical only
}

// DynamicFromMap builds a Dynamic from the dynamic configuration as plain Go
// values, typically the DCS config key decoded from JSON (so numbers may be
// float64, or json.Number). Missing settings get their defaults; ttl,
// loop_wait and retry_timeout are seconds or duration strings ("500ms");
// parameters become PostgreSQL setting strings. Keys pgwarden does not use
// are kept in Raw, which is a deep copy of m with integral numbers as int.
// A wrong type or a ttl shorter than loop_wait + 2*retry_timeout is an error
// naming the key.
func DynamicFromMap(m map[string]any) (Dynamic, error) {
	raw, ok := normalizeValue(m).(map[string]any)
	if !ok || raw == nil {
		raw = map[string]any{}
	}
	d, errs := decodeDynamic(raw)
	errs = append(errs, d.check()...)
	if len(errs) > 0 {
		list := make([]error, len(errs))
		for i, e := range errs {
			list[i] = e
		}
		return Dynamic{}, joinErrors(list)
	}
	return d, nil
}

// Validate checks the timing rules: loop_wait, retry_timeout and ttl are
// positive and ttl >= loop_wait + 2*retry_timeout.
func (d Dynamic) Validate() error {
	errs := d.check()
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return joinErrors(list)
}

func (d Dynamic) check() []*FieldError {
	var errs []*FieldError
	for _, s := range []struct {
		name string
		v    time.Duration
	}{{"ttl", d.TTL}, {"loop_wait", d.LoopWait}, {"retry_timeout", d.RetryTimeout}} {
		if s.v <= 0 {
			errs = append(errs, &FieldError{Path: s.name, Msg: fmt.Sprintf("must be greater than 0, got %v", s.v)})
		}
	}
	if len(errs) == 0 && d.TTL < d.LoopWait+2*d.RetryTimeout {
		errs = append(errs, &FieldError{Path: "ttl", Msg: fmt.Sprintf(
			"ttl (%v) must be at least loop_wait + 2*retry_timeout = %v + 2*%v = %v",
			d.TTL, d.LoopWait, d.RetryTimeout, d.LoopWait+2*d.RetryTimeout)})
	}
	return errs
}

// decodeDynamic reads the settings pgwarden uses out of raw, which is kept
// as Raw. Error paths are relative to raw ("ttl",
// "postgresql.parameters.max_connections").
func decodeDynamic(raw map[string]any) (Dynamic, []*FieldError) {
	d := DefaultDynamic()
	d.Raw = raw
	var errs []*FieldError
	for _, s := range []struct {
		name string
		dst  *time.Duration
	}{{"ttl", &d.TTL}, {"loop_wait", &d.LoopWait}, {"retry_timeout", &d.RetryTimeout}} {
		v, ok := raw[s.name]
		if !ok || v == nil {
			continue
		}
		dur, err := toDuration(v)
		if err != nil {
			errs = append(errs, &FieldError{Path: s.name, Msg: err.Error()})
			continue
		}
		*s.dst = dur
	}
	if v, ok := raw["maximum_lag_on_failover"]; ok && v != nil {
		n, err := toInt64(v)
		switch {
		case err != nil:
			errs = append(errs, &FieldError{Path: "maximum_lag_on_failover", Msg: "expected a number of bytes, got " + describeValue(v)})
		case n < 0:
			errs = append(errs, &FieldError{Path: "maximum_lag_on_failover", Msg: fmt.Sprintf("must not be negative, got %d", n)})
		default:
			d.MaximumLagOnFailover = n
		}
	}
	boolKey := func(path string, v any, dst *bool) {
		if v == nil {
			return
		}
		b, ok := v.(bool)
		if !ok {
			if s, isStr := v.(string); isStr {
				b, ok = parseBoolWord(s)
			}
		}
		if !ok {
			errs = append(errs, &FieldError{Path: path, Msg: "expected true or false, got " + describeValue(v)})
			return
		}
		*dst = b
	}
	if v, ok := raw["synchronous_mode"]; ok && v != nil {
		if s, isStr := v.(string); isStr && strings.EqualFold(s, "quorum") {
			errs = append(errs, &FieldError{Path: "synchronous_mode", Msg: "quorum commit is not supported by pgwarden; use true or false"})
		} else {
			boolKey("synchronous_mode", v, &d.SynchronousMode)
		}
	}
	boolKey("synchronous_mode_strict", raw["synchronous_mode_strict"], &d.SynchronousModeStrict)
	boolKey("pause", raw["pause"], &d.Pause)
	boolKey("check_timeline", raw["check_timeline"], &d.CheckTimeline)
	if v, ok := raw["synchronous_node_count"]; ok && v != nil {
		n, err := toInt64(v)
		if err != nil || n < 1 {
			errs = append(errs, &FieldError{Path: "synchronous_node_count", Msg: "expected a whole number of at least 1, got " + describeValue(v)})
		} else {
			d.SynchronousNodeCount = int(n)
		}
	}
	if v, ok := raw["member_slots_ttl"]; ok && v != nil {
		dur, err := toDuration(v)
		if err != nil || dur < 0 {
			errs = append(errs, &FieldError{Path: "member_slots_ttl", Msg: `expected a number of seconds or a duration such as "30min", got ` + describeValue(v)})
		} else {
			d.MemberSlotsTTL = dur
		}
	}
	if v, ok := raw["slots"]; ok && v != nil {
		m, isMap := v.(map[string]any)
		if !isMap {
			errs = append(errs, &FieldError{Path: "slots", Msg: "expected a mapping of slot names to settings, got " + describeValue(v)})
		} else {
			d.Slots = map[string]PermanentSlot{}
			for name, sv := range m {
				p := joinPath("slots", name)
				if !slotName.MatchString(name) {
					errs = append(errs, &FieldError{Path: p, Msg: "a slot name has only lower-case letters, digits and underscores, at most 63"})
					continue
				}
				sm, _ := sv.(map[string]any)
				ps := PermanentSlot{Type: "physical"}
				if sm != nil {
					if t, _ := sm["type"].(string); t != "" {
						ps.Type = t
					}
					ps.Database, _ = sm["database"].(string)
					ps.Plugin, _ = sm["plugin"].(string)
				}
				switch ps.Type {
				case "physical":
				case "logical":
					if ps.Database == "" || ps.Plugin == "" {
						errs = append(errs, &FieldError{Path: p, Msg: "a logical slot needs database and plugin"})
						continue
					}
				default:
					errs = append(errs, &FieldError{Path: joinPath(p, "type"), Msg: fmt.Sprintf("expected physical or logical, got %q", ps.Type)})
					continue
				}
				d.Slots[name] = ps
			}
		}
	}
	if v, ok := raw["postgresql"]; ok && v != nil {
		pg, isMap := v.(map[string]any)
		if !isMap {
			return d, append(errs, &FieldError{Path: "postgresql", Msg: "expected a mapping, got " + describeValue(v)})
		}
		boolKey("postgresql.use_slots", pg["use_slots"], &d.UseSlots)
		boolKey("postgresql.use_pg_rewind", pg["use_pg_rewind"], &d.UsePgRewind)
		if pv, ok := pg["parameters"]; ok && pv != nil {
			params, perrs := parametersFrom(pv, "postgresql.parameters")
			errs = append(errs, perrs...)
			d.Parameters = params
		}
	}
	return d, errs
}

// parametersFrom converts a mapping of PostgreSQL settings to strings.
// Null values are left out.
// parameterName is what PostgreSQL accepts as a setting name
// (extension settings contain a dot).
var parameterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// slotName is what PostgreSQL accepts as a replication slot name.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func parametersFrom(v any, path string) (map[string]string, []*FieldError) {
	out := map[string]string{}
	m, ok := v.(map[string]any)
	if !ok {
		return out, []*FieldError{{Path: path, Msg: "expected a mapping of parameter names to values, got " + describeValue(v)}}
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []*FieldError
	for _, name := range names {
		if m[name] == nil {
			continue
		}
		if !parameterName.MatchString(name) {
			errs = append(errs, &FieldError{Path: joinPath(path, name), Msg: "not a valid PostgreSQL parameter name"})
			continue
		}
		s, err := settingString(m[name])
		if err != nil {
			errs = append(errs, &FieldError{Path: joinPath(path, name), Msg: err.Error()})
			continue
		}
		out[name] = s
	}
	return out, errs
}

// settingString renders a parameter value the way postgresql.conf wants it:
// booleans as on/off, numbers without exponent.
func settingString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		if v {
			return "on", nil
		}
		return "off", nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("expected a string, number or boolean, got %s", describeValue(v))
}

// toDuration reads ttl, loop_wait or retry_timeout: a number of seconds
// (Patroni) or a Go duration string such as "500ms" (pgwarden).
func toDuration(v any) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf(`expected a number of seconds or a duration such as "500ms", got %s`, describeValue(v))
	}
	var secs float64
	switch v := v.(type) {
	case int:
		secs = float64(v)
	case int64:
		secs = float64(v)
	case float64:
		secs = v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return bad()
		}
		secs = f
	case string:
		s := strings.TrimSpace(v)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			secs = f
			break
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			// PostgreSQL's and Patroni's units: "30min", "1d".
			if n, ok := strings.CutSuffix(s, "min"); ok {
				d, err = time.ParseDuration(n + "m")
			} else if n, ok := strings.CutSuffix(s, "d"); ok {
				var f float64
				if f, err = strconv.ParseFloat(n, 64); err == nil {
					d = time.Duration(f * float64(24*time.Hour))
				}
			}
			if err != nil {
				return bad()
			}
		}
		if d < 0 {
			return 0, fmt.Errorf("must not be negative, got %s", describeValue(v))
		}
		return d, nil
	default:
		return bad()
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > math.MaxInt64/float64(time.Second) {
		return bad()
	}
	if secs < 0 {
		return 0, fmt.Errorf("must not be negative, got %s", describeValue(v))
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// toInt64 reads a whole number: int, integral float64, json.Number or a
// decimal string.
func toInt64(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v), nil
		}
	case json.Number:
		return v.Int64()
	case string:
		return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	return 0, fmt.Errorf("not a whole number: %s", describeValue(v))
}

// normalizeValue deep-copies a plain value, turning whole float64 and other
// integer types into int and map[any]any into map[string]any, so a map read
// back from JSON looks like one read from YAML.
func normalizeValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return map[string]any(nil)
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizeValue(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = normalizeValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalizeValue(x)
		}
		return out
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return int(v)
		}
		return v
	case float32:
		return normalizeValue(float64(v))
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	}
	return v
}
