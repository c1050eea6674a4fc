package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The documents are written with append-style helpers rather than
// encoding/json: the key order is Patroni's, and a health check's answer
// costs no reflection and (with the pooled buffer) no allocation beyond
// net/http's own.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeJSON sends the document built by build with status code.
func writeJSON(w http.ResponseWriter, code int, build func([]byte) []byte) {
	bp := bufPool.Get().(*[]byte)
	b := build((*bp)[:0])
	h := w.Header()
	h["Content-Type"] = contentJSON
	w.WriteHeader(code)
	_, _ = w.Write(b)
	if cap(b) <= 64<<10 { // do not keep huge buffers around
		*bp = b
		bufPool.Put(bp)
	}
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendStringOrNull appends s, or null when s is empty.
func appendStringOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

// appendKey appends `"key":` after a comma unless the object just opened.
// Keys are constants of this package and need no escaping.
func appendKey(b []byte, key string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// appendAny appends an arbitrary value (tags) with encoding/json; values
// that cannot be encoded become null.
func appendAny(b []byte, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, data...)
}

// appendPyTime appends t as Python's str() of an aware datetime, which is
// how Patroni renders postmaster_start_time and replayed_timestamp:
// "2026-11-29 05:20:42.796341+00:00" (microseconds omitted when zero).
// Times are rendered in UTC.
func appendPyTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = append(b, '"')
	b = t.AppendFormat(b, "2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		n := len(b)
		b = strconv.AppendInt(b, int64(us)+1000000, 10) // 1xxxxxx: keeps the zero padding
		b = append(b[:n], b[n+1:]...)
	}
	return append(b, "+00:00\""...)
}
