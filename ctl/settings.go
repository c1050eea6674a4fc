package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/pgwarden/pgwarden/config"
)

// Defaults of the command line.
const (
	// DefaultConfigFile is read when neither -c nor PGWARDENCTL_CONFIG_FILE
	// names a file; its absence is not an error.
	DefaultConfigFile = "/etc/pgwarden/pgwarden.yml"
	// ConfigFileEnv names the configuration file, like PATRONICTL_CONFIG_FILE.
	ConfigFileEnv = "PGWARDENCTL_CONFIG_FILE"
	// DCSURLEnv gives --dcs-url, like patronictl's DCS_URL.
	DCSURLEnv = "PGWARDENCTL_DCS_URL"
	// DefaultEndpoint is used when neither the file nor --dcs-url names etcd.
	DefaultEndpoint = "http://127.0.0.1:2379"
)

// settings is what the commands need from the configuration file and the
// global flags.
type settings struct {
	Scope     string // default cluster name ("" when the file gives none)
	Namespace string
	Endpoints []string // etcd URLs
	EtcdUser  string
	EtcdPass  string
	CACert    string
	Cert      string
	Key       string

	// REST API client: basic auth (ctl.authentication, else
	// restapi.authentication) and TLS.
	RestUser     string
	RestPassword string
	RestAuth     bool
	Insecure     bool
	RestCACert   string
	RestCert     string
	RestKey      string

	// Citus is set when the file has a citus section: the cluster's keys
	// are then under <namespace><scope>/<group>/, one folder per Citus
	// group. CitusGroup is the section's group (nil when it gives none).
	Citus      bool
	CitusGroup *int
}

// globalFlags are the root command's persistent flags.
type globalFlags struct {
	configFile    string
	configFileSet bool
	dcsURL        string
	namespace     string
	insecure      bool
}

// loadSettings reads the configuration file (when there is one) and
// applies the flags over it.
func loadSettings(g globalFlags, lookup func(string) (string, bool)) (*settings, error) {
	s := &settings{}
	path := g.configFile
	explicit := g.configFileSet
	if path == "" {
		if v, ok := lookup(ConfigFileEnv); ok && v != "" {
			path, explicit = v, true
		} else {
			path = DefaultConfigFile
		}
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := s.fromFile(path, data, lookup); err != nil {
			return nil, err
		}
	case explicit || !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("Provided config file %s not existing or no read rights. Check the -c/--config-file parameter", path)
	}

	dcsURL := g.dcsURL
	if dcsURL == "" {
		if v, ok := lookup(DCSURLEnv); ok {
			dcsURL = v
		}
	}
	if dcsURL != "" {
		eps, ns, err := parseDCSURL(dcsURL)
		if err != nil {
			return nil, err
		}
		s.Endpoints = eps
		if ns != "" {
			s.Namespace = ns
		}
	}
	if g.namespace != "" {
		s.Namespace = g.namespace
	}
	if s.Namespace == "" {
		s.Namespace = config.DefaultNamespace
	}
	if len(s.Endpoints) == 0 {
		s.Endpoints = []string{DefaultEndpoint}
	}
	if g.insecure {
		s.Insecure = true
	}
	return s, nil
}

// fromFile takes the settings from the daemon's file: through config.Load
// when the file is a valid daemon configuration (so the PGWARDEN_*
// overrides apply as they do for the daemon), else leniently, for a file
// written for the tool only. The ctl section is always read leniently.
func (s *settings) fromFile(path string, data []byte, lookup func(string) (string, bool)) error {
	var raw map[string]any
	if v, err := loadYAML(string(data)); err == nil {
		raw, _ = v.(map[string]any)
	}
	cfg, cerr := config.ParseWithEnv(data, path, lookup)
	if cerr == nil {
		s.Scope = cfg.Scope
		s.Namespace = cfg.Namespace
		s.Endpoints = cfg.Etcd3.Endpoints()
		s.EtcdUser, s.EtcdPass = cfg.Etcd3.Username, cfg.Etcd3.Password
		s.CACert, s.Cert, s.Key = cfg.Etcd3.CACert, cfg.Etcd3.Cert, cfg.Etcd3.Key
		if a := cfg.RestAPI.Authentication; a != nil {
			s.RestUser, s.RestPassword, s.RestAuth = a.Username, a.Password, true
		}
		if cfg.Citus != nil {
			g := cfg.Citus.Group
			s.Citus, s.CitusGroup = true, &g
		}
	} else {
		if raw == nil {
			return fmt.Errorf("reading %s: %w", path, cerr)
		}
		s.lenient(raw, lookup)
		if s.Scope == "" && len(s.Endpoints) == 0 {
			return fmt.Errorf("reading %s: %w", path, cerr)
		}
	}
	if rest, ok := raw["restapi"].(map[string]any); ok {
		s.RestCACert = str(rest["cafile"])
	}
	if ctlSec, ok := raw["ctl"].(map[string]any); ok {
		if a, ok := ctlSec["authentication"].(map[string]any); ok {
			s.RestUser, s.RestPassword, s.RestAuth = str(a["username"]), str(a["password"]), true
		}
		if b, ok := ctlSec["insecure"].(bool); ok {
			s.Insecure = b
		}
		if v := str(ctlSec["cacert"]); v != "" {
			s.RestCACert = v
		}
		s.RestCert, s.RestKey = str(ctlSec["certfile"]), str(ctlSec["keyfile"])
	}
	return nil
}

// lenient reads scope, namespace, etcd3 and restapi.authentication from a
// file the daemon would refuse, and the matching PGWARDEN_* variables.
func (s *settings) lenient(raw map[string]any, lookup func(string) (string, bool)) {
	env := func(name string) (string, bool) {
		if lookup == nil {
			return "", false
		}
		v, ok := lookup(config.EnvPrefix + name)
		return v, ok && v != ""
	}
	s.Scope = str(raw["scope"])
	if v, ok := env("SCOPE"); ok {
		s.Scope = v
	}
	s.Namespace = str(raw["namespace"])
	if v, ok := env("NAMESPACE"); ok {
		s.Namespace = v
	}
	e, _ := raw["etcd3"].(map[string]any)
	proto := str(e["protocol"])
	if v, ok := env("ETCD3_PROTOCOL"); ok {
		proto = v
	}
	if proto == "" {
		proto = config.DefaultProtocol
	}
	var hosts []string
	if u := str(e["url"]); u != "" {
		hosts = append(hosts, u)
	}
	if h := str(e["host"]); h != "" {
		hosts = append(hosts, h)
	}
	switch h := e["hosts"].(type) {
	case string:
		hosts = append(hosts, splitComma(h)...)
	case []any:
		for _, x := range h {
			hosts = append(hosts, str(x))
		}
	}
	if v, ok := env("ETCD3_HOSTS"); ok {
		hosts = splitComma(v)
	} else if v, ok := env("ETCD3_HOST"); ok {
		hosts = []string{v}
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if !strings.Contains(h, "://") {
			h = proto + "://" + h
		}
		s.Endpoints = append(s.Endpoints, h)
	}
	s.EtcdUser, s.EtcdPass = str(e["username"]), str(e["password"])
	if s.EtcdUser == "" {
		s.EtcdUser = str(e["user"])
	}
	if v, ok := env("ETCD3_USERNAME"); ok {
		s.EtcdUser = v
	}
	if v, ok := env("ETCD3_PASSWORD"); ok {
		s.EtcdPass = v
	}
	s.CACert, s.Cert, s.Key = str(e["cacert"]), str(e["cert"]), str(e["key"])
	if rest, ok := raw["restapi"].(map[string]any); ok {
		if a, ok := rest["authentication"].(map[string]any); ok {
			s.RestUser, s.RestPassword, s.RestAuth = str(a["username"]), str(a["password"]), true
		}
	}
	if v, ok := env("RESTAPI_USERNAME"); ok {
		s.RestUser, s.RestAuth = v, true
	}
	if v, ok := env("RESTAPI_PASSWORD"); ok {
		s.RestPassword, s.RestAuth = v, true
	}
	if c, ok := raw["citus"].(map[string]any); ok {
		s.Citus = true
		if g, ok := normalize(c["group"]).(int64); ok {
			n := int(g)
			s.CitusGroup = &n
		}
	}
	if v, ok := env("CITUS_GROUP"); ok {
		if g, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			s.Citus, s.CitusGroup = true, &g
		}
	}
	if _, ok := env("CITUS_DATABASE"); ok {
		s.Citus = true
	}
}

func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	default:
		return yamlScalar(t)
	}
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseDCSURL reads --dcs-url: one or more comma-separated URLs,
// "http://host:port", "https://host:port", or patronictl's
// "etcd3://host:port/namespace" (also "etcd://", or a bare host:port). A
// path gives the namespace.
func parseDCSURL(v string) ([]string, string, error) {
	var eps []string
	ns := ""
	for _, part := range splitComma(v) {
		if !strings.Contains(part, "//") {
			part = "//" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, "", usageErrorf("invalid --dcs-url %q: %v", v, err)
		}
		scheme := "http"
		switch u.Scheme {
		case "", "etcd", "etcd3", "http":
		case "https":
			scheme = "https"
		default:
			return nil, "", usageErrorf("Unknown dcs scheme: %s (pgwarden uses etcd v3: http, https, etcd3)", u.Scheme)
		}
		host := u.Hostname()
		if host == "" {
			host = "localhost"
		}
		port := u.Port()
		if port == "" {
			port = "2379"
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		eps = append(eps, scheme+"://"+host+":"+port)
		if p := strings.TrimSpace(u.Path); p != "" && p != "/" {
			ns = p
		}
	}
	if len(eps) == 0 {
		return nil, "", usageErrorf("invalid --dcs-url %q", v)
	}
	return eps, ns, nil
}
