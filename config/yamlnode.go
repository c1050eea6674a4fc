package config

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile file (self-referencing anchors, "billion laughs"
// alias expansion) from exhausting the stack or the memory.
const (
	maxDepth = 64
	maxNodes = 1 << 20
)

var errTooLarge = errors.New("document too deeply nested or aliases expand to too many values")

// pair is one key and its value in a mapping.
type pair struct {
	key, val *yaml.Node
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent, "~", "null" or an empty value.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// isMergeKey reports whether k is the YAML merge key "<<".
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// pairs lists the entries of a mapping node, with the entries of merge keys
// ("<<: *anchor") added after the explicit ones. The first occurrence of a key
// wins; duplicates are reported by checkKeys beforehand.
func pairs(n *yaml.Node) []pair {
	return appendPairs(nil, map[string]bool{}, n, 0)
}

func appendPairs(out []pair, seen map[string]bool, n *yaml.Node, depth int) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxDepth {
		return out
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if isMergeKey(k) {
			merges = append(merges, v)
			continue
		}
		if seen[k.Value] {
			continue
		}
		seen[k.Value] = true
		out = append(out, pair{k, v})
	}
	for _, m := range merges {
		m = resolve(m)
		if m != nil && m.Kind == yaml.SequenceNode {
			for _, item := range m.Content {
				out = appendPairs(out, seen, item, depth+1)
			}
			continue
		}
		out = appendPairs(out, seen, m, depth+1)
	}
	return out
}

// lookup returns the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.val
		}
	}
	return nil
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

// describeValue names what a plain Go value holds.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%v", v)
}

// yaml11Bools are the plain scalars YAML 1.1 (and so Patroni's PyYAML) reads
// as booleans, beyond true and false which YAML 1.2 already does.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// plainer converts nodes to plain Go values, with a budget against alias
// bombs.
type plainer struct {
	budget int
}

// toPlain converts a node to map[string]any, []any, string, int, float64,
// bool or nil. Unquoted yes/no/on/off become booleans as in YAML 1.1, which is
// what Patroni's YAML reader does.
func toPlain(n *yaml.Node) (any, error) {
	p := &plainer{budget: maxNodes}
	return p.convert(n, 0)
}

func (p *plainer) convert(n *yaml.Node, depth int) (any, error) {
	p.budget--
	if p.budget < 0 || depth > maxDepth {
		return nil, errTooLarge
	}
	n = resolve(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return p.convert(n.Content[0], depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, kv := range pairs(n) {
			v, err := p.convert(kv.val, depth+1)
			if err != nil {
				return nil, err
			}
			m[kv.key.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := p.convert(item, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		return scalarValue(n), nil
	}
	return nil, nil
}

// scalarValue converts one scalar node according to its resolved tag.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int
		if n.Decode(&i) == nil {
			return i
		}
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	case "!!str":
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			if b, ok := yaml11Bools[n.Value]; ok {
				return b
			}
		}
	}
	return n.Value
}

// parseBoolWord reads the strings accepted for a boolean setting.
func parseBoolWord(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}
