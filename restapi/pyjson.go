package restapi

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pgwarden/pgwarden/dcs"
)

// Patroni answers GET /config, GET /history and PATCH/PUT /config with
// Python's json.dumps defaults: ", " between items, ": " after keys and
// every non-ASCII character escaped. The helpers below write that form.
// Object keys come out sorted: the order of the stored document is not
// known once it has been parsed into a map.

// appendPyJSON appends v (a value decoded from JSON: maps, slices,
// strings, float64, json.Number, bool, nil, or the ints of
// config.DynamicFromMap) in json.dumps' layout.
func appendPyJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		return appendPyString(b, v)
	case float64:
		return appendPyFloat(b, v)
	case json.Number:
		return append(b, v.String()...)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, k)
			b = append(b, ": "...)
			b = appendPyJSON(b, v[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyJSON(b, x)
		}
		return append(b, ']')
	}
	// Anything else: go through encoding/json and re-read it as plain values.
	data, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	var plain any
	if json.Unmarshal(data, &plain) != nil {
		return append(b, "null"...)
	}
	return appendPyJSON(b, plain)
}

// appendPyFloat writes a number read as float64: whole values as integers
// (they were Python ints when Patroni wrote them), others as Python's
// repr does (the shortest form that reads back the same).
func appendPyFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == math.Trunc(f) && math.Abs(f) < 1e21:
		return strconv.AppendFloat(b, f, 'f', 0, 64)
	}
	abs := math.Abs(f)
	if abs >= 1e-4 && abs < 1e16 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'e', -1, 64) // 1e-05 as Python, Go writes 1e-05 too
}

// appendPyString writes s as json.dumps does with ensure_ascii: control
// characters and everything beyond ASCII as \uXXXX (surrogate pairs above
// the BMP). Invalid UTF-8 becomes U+FFFD.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = appendU(b, rune(c))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(appendU(b, r1), r2)
			continue
		}
		b = appendU(b, r) // also U+FFFD for invalid bytes
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendPyHistory writes the history key's entries as Patroni's GET
// /history does: an array of [timeline, lsn, reason, time, new_leader]
// arrays, with as many fields as the entry has.
func appendPyHistory(b []byte, entries []dcs.HistoryEntry) []byte {
	b = append(b, '[')
	for i, h := range entries {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(h.Timeline), 10)
		b = append(b, ", "...)
		b = strconv.AppendInt(b, h.LSN, 10)
		b = append(b, ", "...)
		b = appendPyString(b, h.Reason)
		if h.Time != "" || h.NewLeader != "" {
			b = append(b, ", "...)
			b = appendPyString(b, h.Time)
		}
		if h.NewLeader != "" {
			b = append(b, ", "...)
			b = appendPyString(b, h.NewLeader)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}
