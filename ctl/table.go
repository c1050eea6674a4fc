package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Output formats (--format).
const (
	fmtPretty   = "pretty"
	fmtTSV      = "tsv"
	fmtJSON     = "json"
	fmtYAML     = "yaml"
	fmtYML      = "yml"
	fmtTopology = "topology" // pretty, members as a tree (the topology command)
)

var outputFormats = []string{fmtPretty, fmtTSV, fmtJSON, fmtYAML, fmtYML}

func checkFormat(f string) error {
	for _, v := range outputFormats {
		if f == v {
			return nil
		}
	}
	return usageErrorf("invalid value for '--format' / '-f': %q is not one of %s", f, strings.Join(outputFormats, ", "))
}

// printOutput prints rows in one of the output formats, as patronictl's
// print_output: json and yaml as a list of objects (without the empty cells
// when header is set, i.e. for the members table), tsv with a header line,
// pretty and topology as a table whose top border carries header. For the
// members table (first column "Cluster") the cluster column (and the Citus
// group column when the title names the group) is left out of the table
// and the tags are written as YAML.
func printOutput(w io.Writer, columns []string, rows [][]any, align map[string]byte, format, header string) {
	switch format {
	case fmtJSON, fmtYAML, fmtYML:
		elements := make([]orderedObject, 0, len(rows))
		for _, r := range rows {
			var o orderedObject
			for i, c := range columns {
				if i >= len(r) {
					break
				}
				if header != "" && pyStr(r[i]) == "" {
					continue
				}
				o = append(o, objectField{c, r[i]})
			}
			elements = append(elements, o)
		}
		if format == fmtJSON {
			fmt.Fprintln(w, pyJSON(elements))
		} else {
			list := make([]any, len(elements))
			for i, o := range elements {
				list[i] = o.toMap()
			}
			fmt.Fprintln(w, dumpYAML(list))
		}
		return
	}

	listCluster := header != "" && len(columns) > 0 && columns[0] == "Cluster"
	if listCluster {
		for i, c := range columns {
			if c != "Tags" {
				continue
			}
			for _, r := range rows {
				if m, ok := r[i].(map[string]any); ok && len(m) > 0 {
					if format == fmtPretty {
						r[i] = strings.TrimSpace(dumpYAML(m))
					} else {
						r[i] = flowYAML(m)
					}
				} else {
					r[i] = ""
				}
			}
		}
	}
	if format == fmtTSV {
		fmt.Fprintln(w, strings.Join(columns, "\t"))
		for _, r := range rows {
			cells := make([]string, len(r))
			for i, v := range r {
				cells[i] = pyStr(v)
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
		return
	}
	if listCluster {
		// The cluster name, and the Citus group when the title names it.
		skip := 1
		if strings.Contains(header, " (group: ") {
			skip = 2
		}
		skip = min(skip, len(columns))
		columns = columns[skip:]
		trimmed := make([][]any, len(rows))
		for i, r := range rows {
			trimmed[i] = r[min(skip, len(r)):]
		}
		rows = trimmed
	}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = make([]string, len(r))
		for j, v := range r {
			cells[i][j] = pyStr(v)
		}
	}
	fmt.Fprintln(w, renderTable(header, columns, cells, align))
}

// renderTable draws a table like PrettyTable with patronictl's header
// injection: the title overwrites the start of the top border. Cells with
// several lines get a rule between every row. No trailing newline.
func renderTable(title string, columns []string, rows [][]string, align map[string]byte) string {
	widths := make([]int, len(columns))
	for i, c := range columns {
		widths[i] = textWidth(c)
	}
	multiline := false
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				continue
			}
			for _, line := range strings.Split(c, "\n") {
				if n := textWidth(line); n > widths[i] {
					widths[i] = n
				}
			}
			if strings.Contains(c, "\n") {
				multiline = true
			}
		}
	}
	var rule strings.Builder
	rule.WriteByte('+')
	for _, w := range widths {
		rule.WriteString(strings.Repeat("-", w+2))
		rule.WriteByte('+')
	}
	hr := rule.String()

	top := hr
	if title != "" {
		t := title
		if textWidth(t) > len(hr)-2 {
			t = string([]rune(t)[:len(hr)-2])
		}
		top = hr[:1] + t + hr[1+len(t):]
	}

	var b strings.Builder
	b.WriteString(top)
	b.WriteByte('\n')
	writeRow := func(r []string) {
		lines := make([][]string, len(columns))
		height := 1
		for i := range columns {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			lines[i] = strings.Split(c, "\n")
			if len(lines[i]) > height {
				height = len(lines[i])
			}
		}
		for l := 0; l < height; l++ {
			b.WriteByte('|')
			for i, col := range columns {
				text := ""
				if l < len(lines[i]) {
					text = lines[i][l]
				}
				pad := strings.Repeat(" ", widths[i]-textWidth(text))
				b.WriteByte(' ')
				if align[col] == 'r' {
					b.WriteString(pad + text)
				} else {
					b.WriteString(text + pad)
				}
				b.WriteString(" |")
			}
			b.WriteByte('\n')
		}
	}
	writeRow(columns)
	b.WriteString(hr)
	b.WriteByte('\n')
	for i, r := range rows {
		writeRow(r)
		if multiline && i < len(rows)-1 {
			b.WriteString(hr)
			b.WriteByte('\n')
		}
	}
	b.WriteString(hr)
	return b.String()
}

func textWidth(s string) int { return utf8.RuneCountInString(s) }

// pyStr is Python's str() of a cell value.
func pyStr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return pyFloatRepr(t, false)
	default:
		return pyJSON(v)
	}
}

// objectField and orderedObject keep the column order of a JSON object.
type objectField struct {
	Key   string
	Value any
}

type orderedObject []objectField

func (o orderedObject) toMap() map[string]any {
	m := make(map[string]any, len(o))
	for _, f := range o {
		m[f.Key] = f.Value
	}
	return m
}

// pyJSON writes v as Python's json.dumps does by default: ", " and ": "
// separators, non-ASCII escaped; ordered objects keep their order, maps
// are sorted.
func pyJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, v)
	return b.String()
}

func writePyJSON(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		n := normalize(t)
		if i, ok := n.(int64); ok {
			b.WriteString(strconv.FormatInt(i, 10))
		} else {
			b.WriteString(pyFloatRepr(t, false))
		}
	case string:
		b.WriteString(asciiJSONString(t))
	case orderedObject:
		b.WriteByte('{')
		for i, f := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(asciiJSONString(f.Key))
			b.WriteString(": ")
			writePyJSON(b, f.Value)
		}
		b.WriteByte('}')
	case []orderedObject:
		b.WriteByte('[')
		for i, o := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, o)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(asciiJSONString(k))
			b.WriteString(": ")
			writePyJSON(b, t[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, e)
		}
		b.WriteByte(']')
	default:
		data, err := json.Marshal(t)
		if err != nil {
			data = []byte(asciiJSONString(fmt.Sprint(t)))
		}
		b.Write(data)
	}
}

// asciiJSONString quotes s as Python's json.dumps with ensure_ascii.
func asciiJSONString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(buf.String(), "\n")
	var b strings.Builder
	for _, r := range out {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		}
	}
	return b.String()
}
