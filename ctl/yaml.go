package ctl

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// This file writes and reads YAML the way patronictl does with PyYAML
// (yaml.safe_dump(default_flow_style=False) and yaml.safe_load), so that
// show-config, edit-config and "list -f yaml" print the same text and a
// value typed on the command line gets the same type: keys sorted,
// sequences not indented under their key, strings that would read back as
// something else single-quoted, and the YAML 1.1 booleans (on, off, yes,
// no) read as booleans.

// Implicit resolvers of PyYAML (YAML 1.1). A plain scalar matching one of
// them is not a string, so a string that does must be quoted.
var (
	reYAMLBool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	reYAMLNull  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	reYAMLInt   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	reYAMLFloat = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	reYAMLTime  = regexp.MustCompile(`^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$`)
)

// dumpYAML formats v (maps, slices and scalars as decoded from JSON or
// YAML) as a block YAML document ending with a newline.
func dumpYAML(v any) string {
	var b strings.Builder
	switch t := normalize(v).(type) {
	case map[string]any:
		if len(t) == 0 {
			return "{}\n"
		}
		writeYAMLMap(&b, t, 0)
	case []any:
		if len(t) == 0 {
			return "[]\n"
		}
		writeYAMLList(&b, t, 0)
	default:
		b.WriteString(yamlScalar(t))
		b.WriteString("\n")
	}
	return b.String()
}

// flowYAML formats v in YAML flow style on one line ({a: 1, b: x}), as
// patronictl prints tags in tsv and topology output.
func flowYAML(v any) string {
	switch t := normalize(v).(type) {
	case map[string]any:
		parts := make([]string, 0, len(t))
		for _, k := range sortedKeys(t) {
			parts = append(parts, yamlScalar(k)+": "+flowYAML(t[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			parts = append(parts, flowYAML(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return yamlScalar(t)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeYAMLMap(b *strings.Builder, m map[string]any, indent int) {
	pad := strings.Repeat(" ", indent)
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteString(pad)
		}
		b.WriteString(yamlScalar(k))
		b.WriteString(":")
		writeYAMLValue(b, m[k], indent, true)
	}
}

func writeYAMLList(b *strings.Builder, l []any, indent int) {
	pad := strings.Repeat(" ", indent)
	for i, e := range l {
		if i > 0 {
			b.WriteString(pad)
		}
		b.WriteString("-")
		writeYAMLValue(b, e, indent, false)
	}
}

// writeYAMLValue writes what follows "key:" or "-": a scalar on the same
// line, or a nested block. After a key a nested mapping is indented by two
// and a nested sequence is not (PyYAML's style); after "-" both start on
// the same line.
func writeYAMLValue(b *strings.Builder, v any, indent int, afterKey bool) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			b.WriteString(" {}\n")
			return
		}
		if afterKey {
			b.WriteString("\n" + strings.Repeat(" ", indent+2))
		} else {
			b.WriteString(" ")
		}
		writeYAMLMap(b, t, indent+2)
	case []any:
		if len(t) == 0 {
			b.WriteString(" []\n")
			return
		}
		if afterKey {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			writeYAMLList(b, t, indent)
		} else {
			b.WriteString(" ")
			writeYAMLList(b, t, indent+2)
		}
	default:
		b.WriteString(" ")
		b.WriteString(yamlScalar(t))
		b.WriteString("\n")
	}
}

// yamlScalar formats one scalar as PyYAML does.
func yamlScalar(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		if t {
			return "true"
		}
		return "false"
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return yamlFloat(t)
	case string:
		return yamlString(t)
	default:
		return yamlString(fmt.Sprint(t))
	}
}

// yamlFloat follows PyYAML's represent_float (Python's repr, with ".0"
// added before an exponent).
func yamlFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	return pyFloatRepr(f, true)
}

// pyFloatRepr is Python's repr of a float; yamlStyle adds ".0" to a
// mantissa without a dot before an exponent ("1.0e+20").
func pyFloatRepr(f float64, yamlStyle bool) string {
	a := math.Abs(f)
	if a != 0 && (a >= 1e16 || a < 1e-4) {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+20, 1.5e-07
		mant, exp, _ := strings.Cut(s, "e")      // Go and Python both write two exponent digits
		if yamlStyle && !strings.Contains(mant, ".") {
			mant += ".0"
		}
		return mant + "e" + exp
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// yamlString quotes s when a plain scalar would not read back as the same
// string.
func yamlString(s string) string {
	if needsDoubleQuotes(s) {
		return strconv.Quote(s)
	}
	if plainOK(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func needsDoubleQuotes(s string) bool {
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

func plainOK(s string) bool {
	if s == "" || s != strings.TrimSpace(s) {
		return false
	}
	if reYAMLBool.MatchString(s) || reYAMLNull.MatchString(s) || reYAMLInt.MatchString(s) ||
		reYAMLFloat.MatchString(s) || reYAMLTime.MatchString(s) || s == "<<" || s == "=" {
		return false
	}
	if strings.ContainsAny(s[:1], "#,[]{}&*!|>'\"%@`") {
		return false
	}
	if strings.ContainsAny(s[:1], "-?:") && (len(s) == 1 || s[1] == ' ') {
		return false
	}
	if strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") {
		return false
	}
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		return false
	}
	return true
}

// normalize turns the numbers of a value decoded from JSON (float64) back
// into integers when they are whole, so that 10 prints as 10, and copies
// maps and slices.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalize(e)
		}
		return out
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	case int:
		return int64(t)
	default:
		return v
	}
}

// loadYAML parses a YAML document like PyYAML's safe_load: mappings become
// map[string]any, sequences []any, integers int64, and the YAML 1.1
// booleans (yes, no, on, off, in any of PyYAML's spellings) bool. An empty
// document is nil.
func loadYAML(text string) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return yamlNodeValue(doc.Content[0])
}

func yamlNodeValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlNodeValue(n.Content[0])
	case yaml.AliasNode:
		return yamlNodeValue(n.Alias)
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Tag == "!!merge" {
				merged, err := yamlNodeValue(vn)
				if err != nil {
					return nil, err
				}
				if mm, ok := merged.(map[string]any); ok {
					for k, v := range mm {
						if _, set := out[k]; !set {
							out[k] = v
						}
					}
				}
				continue
			}
			k, err := yamlNodeValue(kn)
			if err != nil {
				return nil, err
			}
			v, err := yamlNodeValue(vn)
			if err != nil {
				return nil, err
			}
			out[scalarKey(k)] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlNodeValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		return yamlScalarValue(n)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// scalarKey makes a mapping key a string, as JSON requires.
func scalarKey(k any) string {
	switch t := k.(type) {
	case string:
		return t
	case nil:
		return "null"
	default:
		return yamlScalar(t)
	}
}

func yamlScalarValue(n *yaml.Node) (any, error) {
	plain := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	if plain && reYAMLBool.MatchString(n.Value) {
		switch n.Value[0] {
		case 'y', 'Y', 't', 'T':
			return true, nil
		case 'n', 'N', 'f', 'F':
			return false, nil
		default: // on / off
			return strings.EqualFold(n.Value, "on"), nil
		}
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return f, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return f, nil
	default:
		return n.Value, nil
	}
}
