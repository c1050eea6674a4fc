package dcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// memberFields is Member without its methods, so that encoding/json handles
// the known fields and the custom methods only deal with Extra.
type memberFields Member

// knownMemberKeys are the JSON keys Member has fields for.
var knownMemberKeys = map[string]bool{
	"conn_url": true, "api_url": true, "state": true, "role": true,
	"version": true, "tags": true, "pending_restart": true,
	"xlog_location": true, "replay_lsn": true, "receive_lsn": true,
	"replication_state": true, "timeline": true,
}

// MarshalJSON writes the member as Patroni does: compact, known keys in
// Patroni's order, then any Extra keys in sorted order.
func (m Member) MarshalJSON() ([]byte, error) {
	known, err := compactJSON(memberFields(m))
	if err != nil {
		return nil, err
	}
	extra := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		if !knownMemberKeys[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return known, nil
	}
	sort.Strings(extra)
	var b bytes.Buffer
	b.Write(known[:len(known)-1]) // without the closing brace
	for _, k := range extra {
		v := m.Extra[k]
		if !json.Valid(v) {
			return nil, fmt.Errorf("member %s: extra field %q holds invalid JSON", m.Name, k)
		}
		name, err := compactJSON(k)
		if err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(name)
		b.WriteByte(':')
		if err := json.Compact(&b, v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a member value; keys it does not know go to Extra.
// Name and the etcd metadata are left as they are.
func (m *Member) UnmarshalJSON(data []byte) error {
	var f memberFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	f.Extra = nil
	for k, v := range all {
		if knownMemberKeys[k] {
			continue
		}
		if f.Extra == nil {
			f.Extra = make(map[string]json.RawMessage)
		}
		f.Extra[k] = append(json.RawMessage(nil), v...)
	}
	f.Name, f.ModRevision, f.Lease = m.Name, m.ModRevision, m.Lease
	*m = Member(f)
	return nil
}

// MemberJSON is the value pgwarden writes to members/<name>, byte for byte
// in Patroni 4.1.4's format: {"conn_url":...,"api_url":...,"state":...,
// "role":...,"version":...,"tags":...,"pending_restart":true,
// "xlog_location":N,"replay_lsn":N,"receive_lsn":N,"replication_state":...,
// "timeline":N}, optional keys only when set.
func MemberJSON(m Member) ([]byte, error) {
	b, err := m.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding member %s as JSON: %w", m.Name, err)
	}
	return b, nil
}

// ParseMember reads the value of members/<name>. Unknown keys are kept in
// Extra; Patroni 3's role "master" is kept as it is.
func ParseMember(name string, data []byte) (Member, error) {
	m := Member{Name: name}
	if err := json.Unmarshal(data, &m); err != nil {
		return Member{}, fmt.Errorf("parsing member %s: %w", name, err)
	}
	return m, nil
}

// statusFields is Status without its methods.
type statusFields Status

// MarshalJSON writes {"optime":N,"slots":{...}} with slots an object even
// when there are none, and retain_slots only when set.
func (s Status) MarshalJSON() ([]byte, error) {
	f := statusFields(s)
	if f.Slots == nil {
		f.Slots = map[string]int64{}
	}
	return compactJSON(f)
}

// compactJSON encodes v without HTML escaping (Python's json module does not
// escape <, > and &) and without a trailing newline.
func compactJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// FormatLSN writes a WAL position in PostgreSQL's text form, "0/4000050".
func FormatLSN(n int64) string {
	u := uint64(n)
	return fmt.Sprintf("%X/%X", u>>32, u&0xFFFFFFFF)
}

// ParseLSN reads a WAL position in PostgreSQL's text form ("16/B374D848").
func ParseLSN(s string) (int64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parsing LSN %q: no slash between the two halves", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parsing LSN %q: high half: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parsing LSN %q: low half: %w", s, err)
	}
	return int64(h<<32 | l), nil
}

// ParseConnURL splits a member's conn_url ("postgres://host:port/postgres")
// into host and port. The port defaults to 5432 when the URL has none.
func ParseConnURL(u string) (host string, port int, err error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", 0, fmt.Errorf("parsing connection URL %q: %w", u, err)
	}
	if p.Scheme != "postgres" && p.Scheme != "postgresql" {
		return "", 0, fmt.Errorf("connection URL %q does not start with postgres://", u)
	}
	host = p.Hostname()
	if host == "" {
		return "", 0, fmt.Errorf("connection URL %q names no host", u)
	}
	ps := p.Port()
	if ps == "" {
		if strings.HasSuffix(p.Host, ":") {
			return "", 0, fmt.Errorf("connection URL %q has an empty port", u)
		}
		return host, 5432, nil
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("connection URL %q has an invalid port %q", u, ps)
	}
	return host, port, nil
}
