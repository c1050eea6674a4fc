package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// splitHostPort splits "host:port" ("[::1]:5432" for IPv6). The host may be
// empty (":8008", every interface); the port must be 1-65535.
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return "", 0, fmt.Errorf("expected host:port, got %q", s)
	}
	port, err := parsePort(p)
	if err != nil {
		return "", 0, fmt.Errorf("%v in %q", err, s)
	}
	return host, port, nil
}

func parsePort(p string) (int, error) {
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("invalid port %q", p)
	}
	return port, nil
}

// parseListen splits postgresql.listen, which in Patroni is one or more
// comma-separated hosts followed by a single port: "127.0.0.1,10.0.0.5:5432".
func parseListen(s string) ([]string, int, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return nil, 0, fmt.Errorf("expected host[,host...]:port, got %q", s)
	}
	port, err := parsePort(s[i+1:])
	if err != nil {
		return nil, 0, fmt.Errorf("%v in %q", err, s)
	}
	var hosts []string
	for _, h := range strings.Split(s[:i], ",") {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if h == "" {
			return nil, 0, fmt.Errorf("empty host in %q", s)
		}
		hosts = append(hosts, h)
	}
	return hosts, port, nil
}

// isWildcard reports whether host means "every interface", which other
// nodes cannot connect to.
func isWildcard(host string) bool {
	switch host {
	case "", "*", "0.0.0.0", "::", "[::]":
		return true
	}
	return false
}

// splitList splits a comma-separated list, as in etcd3.hosts or
// PGWARDEN_ETCD3_HOSTS. It also takes Patroni's environment form,
// "'host1:2379','host2:2379'", optionally in brackets.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") && !strings.Contains(s, "]:") {
		s = s[1 : len(s)-1]
	}
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.Trim(strings.TrimSpace(item), `'"`)
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}
