package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// loader carries one Parse from the YAML tree to a validated Config.
type loader struct {
	file string
	cfg  *Config

	nodes map[string]*yaml.Node // value of every key of the known sections, by dotted path
	lines map[string]int        // line of every key and list item, by dotted path
	env   map[string]string     // dotted path -> environment variable that overrode it
	errs  []error

	unsupported map[string]bool

	// etcd3 endpoints by origin, merged in finish.
	etcdHost    []hostRef // etcd3.host
	etcdHosts   []hostRef // etcd3.hosts
	etcdURL     string    // etcd3.url
	protocolSet bool      // etcd3.protocol given in the file or the environment

	citusGroupSet bool // citus.group given in the file or the environment
}

// hostRef is one etcd endpoint with the path it came from.
type hostRef struct {
	addr, path string
}

func newLoader(file string) *loader {
	return &loader{
		file:        file,
		cfg:         &Config{Path: file},
		nodes:       map[string]*yaml.Node{},
		lines:       map[string]int{},
		env:         map[string]string{},
		unsupported: map[string]bool{},
	}
}

// errorf records an error about the setting at path.
func (l *loader) errorf(path, format string, args ...any) {
	l.errs = append(l.errs, l.fieldError(path, fmt.Sprintf(format, args...)))
}

// errorAtf records an error about the setting at path, located where the
// setting at origin is (for a missing setting another one requires).
func (l *loader) errorAtf(origin, path, format string, args ...any) {
	e := l.fieldError(origin, fmt.Sprintf(format, args...))
	e.Path = path
	l.errs = append(l.errs, e)
}

// fieldError builds an error about path, pointing at the environment
// variable that set it or else at its line in the file.
func (l *loader) fieldError(path, msg string) *FieldError {
	e := &FieldError{Path: path, Msg: msg}
	if v := l.envFor(path); v != "" {
		e.Env = v
		return e
	}
	e.File = l.file
	e.Line = l.lineFor(path)
	return e
}

// envFor returns the variable that set path or one of its parents.
func (l *loader) envFor(path string) string {
	for p := path; p != ""; p = parentPath(p) {
		if v, ok := l.env[p]; ok {
			return v
		}
	}
	return ""
}

// lineFor returns the line of path, or of its closest parent in the file.
func (l *loader) lineFor(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

// markUnsupported adds path to Config.Unsupported once.
func (l *loader) markUnsupported(path string) {
	if !l.unsupported[path] {
		l.unsupported[path] = true
		l.cfg.Unsupported = append(l.cfg.Unsupported, path)
	}
}

// parseYAML reads the document and checks every key against the schema. It
// reports false when the document cannot be decoded at all; unknown keys
// do not prevent decoding the known ones.
func (l *loader) parseYAML(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return true // empty file: validation reports what is missing
		}
		l.errs = append(l.errs, &FieldError{File: l.file, Line: yamlErrorLine(err), Msg: yamlErrorMsg(err)})
		return false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errs = append(l.errs, &FieldError{File: l.file, Line: extra.Line, Msg: "more than one YAML document; expected exactly one"})
		return false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return true
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return true
	}
	if resolve(root).Kind != yaml.MappingNode {
		l.errs = append(l.errs, &FieldError{File: l.file, Line: root.Line, Msg: "expected a mapping of settings at the top level, got " + describe(root)})
		return false
	}
	l.checkKeys(root, "", 0)
	if len(l.errs) > 0 {
		return false
	}
	l.walk(schema, root, "", false)
	return true
}

// yamlErrorLine extracts the line from a yaml.v3 syntax error
// ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	var n int
	if _, scanErr := fmt.Sscanf(err.Error(), "yaml: line %d:", &n); scanErr == nil {
		return n
	}
	return 0
}

func yamlErrorMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return "invalid YAML: " + msg
}

// checkKeys refuses duplicate and non-scalar keys anywhere in the document,
// and records the line of every key and list item.
func (l *loader) checkKeys(n *yaml.Node, path string, depth int) {
	if depth > maxDepth {
		l.errorf(path, "%v", errTooLarge)
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMergeKey(k) {
				continue
			}
			rk := resolve(k)
			if rk == nil || rk.Kind != yaml.ScalarNode {
				l.errs = append(l.errs, &FieldError{File: l.file, Line: k.Line, Path: path, Msg: "keys must be plain strings, got " + describe(k)})
				continue
			}
			p := joinPath(path, rk.Value)
			if line, dup := first[rk.Value]; dup {
				l.errs = append(l.errs, &FieldError{File: l.file, Line: k.Line, Path: p, Msg: fmt.Sprintf("duplicate key (first set at line %d)", line)})
				continue
			}
			first[rk.Value] = k.Line
			if _, seen := l.lines[p]; !seen {
				l.lines[p] = k.Line
			}
			l.checkKeys(v, p, depth+1)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := indexPath(path, i)
			if _, seen := l.lines[p]; !seen {
				l.lines[p] = item.Line
			}
			l.checkKeys(item, p, depth+1)
		}
	}
}

// walk checks the keys of a section against spec: known keys are recorded in
// nodes, keys of Patroni's that pgwarden does not implement go to
// Unsupported, and anything else is a typo.
func (l *loader) walk(spec *keySpec, n *yaml.Node, path string, inUnsupported bool) {
	if isNull(n) {
		return
	}
	if resolve(n).Kind != yaml.MappingNode {
		l.errorf(path, "expected a mapping, got %s", describe(n))
		return
	}
	for _, kv := range pairs(n) {
		name := kv.key.Value
		p := joinPath(path, name)
		if _, ok := l.lines[p]; !ok {
			l.lines[p] = kv.key.Line // a key brought in by a merge key
		}
		child, known := spec.sub[name]
		if !known {
			if spec.extra != nil && spec.extra(n, name, kv.val) {
				if !inUnsupported {
					l.markUnsupported(p)
				}
				continue
			}
			msg := "unknown key"
			if s := suggest(name, spec.knownKeys()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			l.errs = append(l.errs, &FieldError{File: l.file, Line: kv.key.Line, Path: p, Msg: msg})
			continue
		}
		l.nodes[p] = kv.val
		unsupported := inUnsupported
		if child.unsupported && !inUnsupported && (child.implemented == nil || !child.implemented(kv.val)) {
			l.markUnsupported(p)
			unsupported = true
		}
		if child.kind == kindSection {
			l.walk(child, kv.val, p, unsupported)
		}
	}
}

// value returns the resolved value at path, or nil when absent or null.
func (l *loader) value(path string) *yaml.Node {
	n := l.nodes[path]
	if isNull(n) {
		return nil
	}
	return resolve(n)
}

// str reads a string setting. Any scalar is taken as written, so
// "password: 0123" is "0123".
func (l *loader) str(path string) string {
	n := l.value(path)
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		l.errorf(path, "expected a string, got %s", describe(n))
		return ""
	}
	return n.Value
}

// optBool reads an optional boolean (nil when absent).
func (l *loader) optBool(path string) *bool {
	n := l.value(path)
	if n == nil {
		return nil
	}
	b, ok := parseBoolWord(n.Value)
	if n.Kind != yaml.ScalarNode || !ok {
		l.errorf(path, "expected true or false, got %s", describe(n))
		return nil
	}
	return &b
}

// strList reads a list of strings.
func (l *loader) strList(path string) []string {
	n := l.value(path)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(path, "expected a list of strings, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		if isNull(item) || item.Kind != yaml.ScalarNode {
			l.errorf(indexPath(path, i), "expected a string, got %s", describe(item))
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

// plain converts the value at path to plain Go values.
func (l *loader) plain(path string) any {
	n := l.value(path)
	if n == nil {
		return nil
	}
	v, err := toPlain(n)
	if err != nil {
		l.errorf(path, "%v", err)
		return nil
	}
	return v
}

// addFieldErrors records errors whose paths are relative to prefix.
func (l *loader) addFieldErrors(prefix string, errs []*FieldError) {
	for _, e := range errs {
		p := prefix
		if e.Path != "" {
			p = joinPath(prefix, e.Path)
		}
		l.errs = append(l.errs, l.fieldError(p, e.Msg))
	}
}

// decode fills the Config from the checked tree.
func (l *loader) decode() {
	c := l.cfg
	c.Scope = l.str("scope")
	c.Namespace = l.str("namespace")
	c.Name = l.str("name")

	c.RestAPI.Listen = l.str("restapi.listen")
	c.RestAPI.ConnectAddress = l.str("restapi.connect_address")
	if l.value("restapi.authentication") != nil {
		c.RestAPI.Authentication = &BasicAuth{
			Username: l.str("restapi.authentication.username"),
			Password: l.str("restapi.authentication.password"),
		}
	}

	l.decodeEtcd3()
	l.decodeBootstrap()
	l.decodePostgreSQL()
	l.decodeTags()
	l.decodeLog()
	l.decodeCitus()
}

// decodeCitus reads the citus section: group and database are required,
// as in Patroni.
func (l *loader) decodeCitus() {
	n := l.value("citus")
	if n == nil {
		return
	}
	c := l.citus()
	if l.value("citus.group") != nil {
		v := l.plain("citus.group")
		g, err := toInt64(v)
		if err != nil || g < 0 || g > 1<<30 {
			l.errorf("citus.group", "expected a group number (0 for the coordinator, 1, 2, ... for workers), got %s", describeValue(v))
		} else {
			c.Group = int(g)
			l.citusGroupSet = true
		}
	}
	c.Database = strings.TrimSpace(l.str("citus.database"))
	if b := l.optBool("citus.register_secondaries"); b != nil {
		c.RegisterSecondaries = *b
	}
	c.StandinSQL = strings.TrimSpace(l.str("citus.standin_sql"))
}

func (l *loader) decodeEtcd3() {
	e := &l.cfg.Etcd3
	if h := l.str("etcd3.host"); h != "" {
		l.etcdHost = []hostRef{{strings.TrimSpace(h), "etcd3.host"}}
	}
	if n := l.value("etcd3.hosts"); n != nil {
		switch n.Kind {
		case yaml.SequenceNode:
			for i, h := range l.strList("etcd3.hosts") {
				l.etcdHosts = append(l.etcdHosts, hostRef{strings.TrimSpace(h), indexPath("etcd3.hosts", i)})
			}
		case yaml.ScalarNode:
			for _, h := range splitList(n.Value) {
				l.etcdHosts = append(l.etcdHosts, hostRef{h, "etcd3.hosts"})
			}
		default:
			l.errorf("etcd3.hosts", "expected a list of host:port or a comma-separated string, got %s", describe(n))
		}
	}
	l.etcdURL = strings.TrimSpace(l.str("etcd3.url"))
	e.Protocol = strings.TrimSpace(l.str("etcd3.protocol"))
	l.protocolSet = e.Protocol != ""
	e.Username = l.str("etcd3.username")
	e.Password = l.str("etcd3.password")
	e.CACert = l.str("etcd3.cacert")
	e.Cert = l.str("etcd3.cert")
	e.Key = l.str("etcd3.key")
}

func (l *loader) decodeBootstrap() {
	b := &l.cfg.Bootstrap
	raw, _ := l.plain("bootstrap.dcs").(map[string]any)
	if raw == nil {
		raw = map[string]any{}
	}
	dyn, errs := decodeDynamic(raw)
	l.addFieldErrors("bootstrap.dcs", errs)
	b.DCS = dyn
	b.Initdb = l.initdb()
	b.PgHBA = l.strList("bootstrap.pg_hba")
}

// initdb normalizes Patroni's bootstrap.initdb list to command-line options:
// "data-checksums" -> "--data-checksums", {encoding: UTF8} -> "--encoding=UTF8".
func (l *loader) initdb() []string {
	const path = "bootstrap.initdb"
	n := l.value(path)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(path, "expected a list of options (strings or one-key mappings), got %s", describe(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		ip := indexPath(path, i)
		item = resolve(item)
		switch {
		case isNull(item):
			l.errorf(ip, "expected an option, got null")
		case item.Kind == yaml.ScalarNode:
			out = append(out, initdbOption(item.Value, "", false))
		case item.Kind == yaml.MappingNode:
			for _, kv := range pairs(item) {
				v := resolve(kv.val)
				switch {
				case isNull(v):
					out = append(out, initdbOption(kv.key.Value, "", false))
				case v.Kind == yaml.ScalarNode:
					out = append(out, initdbOption(kv.key.Value, v.Value, true))
				default:
					l.errorf(joinPath(ip, kv.key.Value), "expected a scalar option value, got %s", describe(v))
				}
			}
		default:
			l.errorf(ip, "expected an option (string or one-key mapping), got %s", describe(item))
		}
	}
	return out
}

func initdbOption(name, value string, hasValue bool) string {
	name = strings.TrimSpace(name)
	if !strings.HasPrefix(name, "-") {
		name = "--" + name
	}
	if hasValue {
		return name + "=" + value
	}
	return name
}

func (l *loader) decodePostgreSQL() {
	pg := &l.cfg.PostgreSQL
	pg.Listen = strings.TrimSpace(l.str("postgresql.listen"))
	pg.ConnectAddress = strings.TrimSpace(l.str("postgresql.connect_address"))
	pg.DataDir = l.str("postgresql.data_dir")
	pg.BinDir = l.str("postgresql.bin_dir")
	pg.PgPass = l.str("postgresql.pgpass")
	pg.OSUser = l.str("postgresql.os_user")
	pg.UsePgRewind = l.optBool("postgresql.use_pg_rewind")
	pg.UseSlots = l.optBool("postgresql.use_slots")
	if b := l.optBool("postgresql.remove_data_directory_on_rewind_failure"); b != nil {
		pg.RemoveDataDirectoryOnRewindFailure = *b
	}
	if b := l.optBool("postgresql.remove_data_directory_on_diverged_timelines"); b != nil {
		pg.RemoveDataDirectoryOnDivergedTimelines = *b
	}
	pg.Superuser = Credentials{
		Username: l.str("postgresql.authentication.superuser.username"),
		Password: l.str("postgresql.authentication.superuser.password"),
	}
	pg.Replication = Credentials{
		Username: l.str("postgresql.authentication.replication.username"),
		Password: l.str("postgresql.authentication.replication.password"),
	}
	pg.Parameters = map[string]string{}
	if v := l.plain("postgresql.parameters"); v != nil {
		params, errs := parametersFrom(v, "")
		l.addFieldErrors("postgresql.parameters", errs)
		pg.Parameters = params
	}
	pg.PgHBA = l.strList("postgresql.pg_hba")
}

// tagTypes are the tags pgwarden or Patroni give a meaning to, with the
// type they must have; the other tags are free.
var tagTypes = map[string]struct {
	want      string // "bool", "int" or "string"
	supported bool
}{
	"nofailover":        {"bool", true},
	"noloadbalance":     {"bool", true},
	"clonefrom":         {"bool", true},
	"nosync":            {"bool", true},
	"nostream":          {"bool", false},
	"replicatefrom":     {"string", false},
	"failover_priority": {"int", false},
	"sync_priority":     {"int", false},
}

func (l *loader) decodeTags() {
	t := &l.cfg.Tags
	t.Raw = map[string]any{}
	v := l.plain("tags")
	if v == nil {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		l.errorf("tags", "expected a mapping of tag names to values, got %s", describeValue(v))
		return
	}
	t.Raw = m
	for _, name := range sortedKeys(m) {
		spec, known := tagTypes[name]
		val := m[name]
		if !known || val == nil {
			continue
		}
		p := joinPath("tags", name)
		if !spec.supported {
			l.markUnsupported(p)
		}
		switch spec.want {
		case "bool":
			b, ok := val.(bool)
			if !ok {
				if s, isStr := val.(string); isStr {
					b, ok = parseBoolWord(s)
				}
			}
			if !ok {
				l.errorf(p, "expected true or false, got %s", describeValue(val))
				continue
			}
			m[name] = b // publish a real boolean, even if written "true" or yes
			switch name {
			case "nofailover":
				t.NoFailover = b
			case "noloadbalance":
				t.NoLoadBalance = b
			case "clonefrom":
				t.CloneFrom = b
			case "nosync":
				t.NoSync = b
			}
		case "int":
			if _, err := toInt64(val); err != nil {
				l.errorf(p, "expected an integer, got %s", describeValue(val))
			}
		case "string":
			if _, ok := val.(string); !ok {
				l.errorf(p, "expected a string, got %s", describeValue(val))
			}
		}
	}
}

func (l *loader) decodeLog() {
	lg := &l.cfg.Log
	if n := l.value("log.type"); n != nil {
		switch t := l.str("log.type"); strings.ToLower(t) {
		case "plain", "text":
			lg.Format = "text"
		case "json":
			lg.Format = "json"
		default:
			if n.Kind == yaml.ScalarNode {
				l.errorf("log.type", `expected "plain" or "json", got %q`, t)
			}
		}
	}
	if n := l.value("log.format"); n != nil {
		// pgwarden's log.format is text or json; Patroni's is a Python
		// logging format string (or a list of fields), not supported.
		f := ""
		if n.Kind == yaml.ScalarNode {
			f = strings.ToLower(strings.TrimSpace(n.Value))
		}
		switch f {
		case "text", "plain":
			lg.Format = "text"
		case "json":
			lg.Format = "json"
		default:
			l.markUnsupported("log.format")
		}
	}
	lg.Level = l.str("log.level")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
