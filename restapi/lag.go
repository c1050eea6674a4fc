package restapi

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Leading numbers as PostgreSQL's strtol (base 0) and strtod read them,
// which is what Patroni's parse_int follows.
var (
	hexPrefix   = regexp.MustCompile(`^[-+]?0x[0-9a-fA-F]+`)
	octPrefix   = regexp.MustCompile(`^[-+]?0[0-7]*`)
	decPrefix   = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)`)
	floatPrefix = regexp.MustCompile(`^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`)
)

// byteUnits are the memory units accepted after the number, case
// sensitive, with their size in bytes and the granularity a value in that
// unit is rounded to (the next smaller unit), as PostgreSQL does.
var byteUnits = map[string]struct{ size, roundTo float64 }{
	"B":  {1, 1},
	"kB": {1 << 10, 1},
	"MB": {1 << 20, 1 << 10},
	"GB": {1 << 30, 1 << 20},
	"TB": {1 << 40, 1 << 30},
}

// parseLag parses a ?lag= value the way Patroni's parse_int(value, "B")
// does: an integer (decimal, 0x hex, or 0-prefixed octal as C's strtol
// reads it) or a decimal fraction, optionally followed by one of the units
// B, kB, MB, GB, TB: "1048576", "1024kB", "1MB", "1.5GB".
//
// Unlike Patroni, which silently ignores a value it cannot parse (no lag
// limit at all), a bad or negative value is an error, so that a typo in a
// load balancer's check is noticed rather than routing to a lagging
// replica.
func parseLag(value string) (int64, error) {
	s := strings.TrimSpace(value)
	var (
		f     float64
		exact int64
		isInt bool
		rest  string
	)
	for _, p := range []struct {
		re   *regexp.Regexp
		base int
	}{{hexPrefix, 16}, {octPrefix, 8}, {decPrefix, 10}} {
		m := p.re.FindString(s)
		if m == "" {
			continue
		}
		digits, neg := strings.TrimLeft(m, "+-"), strings.HasPrefix(m, "-")
		if p.base == 16 {
			digits = digits[2:]
		}
		v, err := strconv.ParseInt(digits, p.base, 64)
		if err != nil {
			return 0, fmt.Errorf("%w %q: out of range", errBadLag, value)
		}
		if neg {
			v = -v
		}
		exact, isInt, rest = v, true, s[len(m):]
		break
	}
	if !isInt && strings.HasPrefix(s, ".") || isInt && rest != "" && strings.ContainsRune(".eE", rune(rest[0])) {
		m := floatPrefix.FindString(s)
		if m == "" {
			return 0, fmt.Errorf("%w %q: not a number", errBadLag, value)
		}
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			return 0, fmt.Errorf("%w %q: out of range", errBadLag, value)
		}
		f, isInt, rest = v, false, s[len(m):]
	} else if !isInt {
		return 0, fmt.Errorf("%w %q: not a number", errBadLag, value)
	} else {
		f = float64(exact)
	}

	unit := strings.TrimSpace(rest)
	if unit == "" && isInt {
		if exact < 0 {
			return 0, fmt.Errorf("%w %q: negative", errBadLag, value)
		}
		return exact, nil
	}
	if unit != "" {
		u, ok := byteUnits[unit]
		if !ok {
			return 0, fmt.Errorf("%w %q: the unit must be one of B, kB, MB, GB, TB", errBadLag, value)
		}
		f = math.RoundToEven(f*u.size/u.roundTo) * u.roundTo
	}
	f = math.RoundToEven(f)
	switch {
	case f < 0:
		return 0, fmt.Errorf("%w %q: negative", errBadLag, value)
	case f >= math.MaxInt64 || math.IsNaN(f):
		return 0, fmt.Errorf("%w %q: out of range", errBadLag, value)
	}
	return int64(f), nil
}
