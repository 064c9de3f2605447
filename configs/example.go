package configs

import (
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed example.yaml
var example []byte

// Example returns the embedded commented example configuration. It parses,
// but Validate reports its placeholders (example.org, CHANGE_ME).
func Example() []byte {
	return slices.Clone(example)
}

// SetValue returns doc with the value at path (like "sip.trunks[0].host")
// replaced by value, keeping every comment and all other text as it is.
// value is a string, an int, a bool, a []string or a map[string]string; it
// is written in YAML flow style. The value being replaced must be a flow
// value on one line (a scalar, [...] or {...}).
func SetValue(doc []byte, path string, value any) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("configs: empty document")
	}
	n, err := findNode(root.Content[0], path)
	if err != nil {
		return nil, err
	}
	if n.Style&yaml.FlowStyle == 0 && n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("configs: %s: only flow values can be replaced", path)
	}
	text, err := flowText(value)
	if err != nil {
		return nil, fmt.Errorf("configs: %s: %w", path, err)
	}
	lines := strings.SplitAfter(string(doc), "\n")
	if n.Line < 1 || n.Line > len(lines) {
		return nil, fmt.Errorf("configs: %s: line %d out of range", path, n.Line)
	}
	line := lines[n.Line-1]
	start := columnOffset(line, n.Column)
	end, err := flowEnd(line, start)
	if err != nil {
		return nil, fmt.Errorf("configs: %s: %w", path, err)
	}
	rest := line[end:]
	// Keep a trailing comment in its column when there is room.
	if trimmed := strings.TrimLeft(rest, " "); strings.HasPrefix(trimmed, "#") {
		pad := len(rest) - len(trimmed) + (end - start) - len(text)
		rest = strings.Repeat(" ", max(pad, 1)) + trimmed
	}
	lines[n.Line-1] = line[:start] + text + rest
	return []byte(strings.Join(lines, "")), nil
}

// findNode walks a path of keys and [i] indexes from a mapping node.
func findNode(n *yaml.Node, path string) (*yaml.Node, error) {
	rest := path
	for rest != "" {
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			var i int
			if end < 0 || n.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("configs: %s: not a list", path)
			}
			if _, err := fmt.Sscanf(rest[1:end], "%d", &i); err != nil || i < 0 || i >= len(n.Content) {
				return nil, fmt.Errorf("configs: %s: no such index", path)
			}
			n, rest = n.Content[i], strings.TrimPrefix(rest[end+1:], ".")
			continue
		}
		key := rest
		if i := strings.IndexAny(rest, ".["); i >= 0 {
			key, rest = rest[:i], strings.TrimPrefix(rest[i:], ".")
		} else {
			rest = ""
		}
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("configs: %s: not a mapping", path)
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil, fmt.Errorf("configs: %s: no key %q", path, key)
		}
		n = next
	}
	return n, nil
}

// columnOffset converts yaml's 1-based rune column into a byte offset.
func columnOffset(line string, column int) int {
	col := 1
	for off := range line {
		if col == column {
			return off
		}
		col++
	}
	return len(line)
}

// flowEnd finds the byte offset just past the flow value starting at start.
func flowEnd(line string, start int) (int, error) {
	s := strings.TrimRight(line[start:], "\r\n")
	if s == "" {
		return start, nil
	}
	switch s[0] {
	case '"', '\'':
		end := skipQuoted(s, 0)
		if end < 0 {
			return 0, fmt.Errorf("unterminated string")
		}
		return start + end, nil
	case '[', '{':
		depth := 0
		for i := 0; i < len(s); {
			switch s[i] {
			case '"', '\'':
				if i = skipQuoted(s, i); i < 0 {
					return 0, fmt.Errorf("unterminated string")
				}
				continue
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return start + i + 1, nil
				}
			}
			i++
		}
		return 0, fmt.Errorf("flow value spans lines")
	}
	end := len(s)
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			end = i
			break
		}
	}
	return start + len(strings.TrimRight(s[:end], " \t")), nil
}

// skipQuoted returns the offset just past the quoted scalar starting at
// s[i], or -1 when it does not end on this line.
func skipQuoted(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return -1
}

// flowText writes a value in YAML flow style on one line.
func flowText(value any) (string, error) {
	switch v := value.(type) {
	case string:
		return scalarText(v)
	case int, bool:
		return fmt.Sprint(v), nil
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			t, err := scalarText(s)
			if err != nil {
				return "", err
			}
			parts[i] = t
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case map[string]string:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			kt, err := scalarText(k)
			if err != nil {
				return "", err
			}
			vt, err := scalarText(v[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, kt+": "+vt)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	}
	return "", fmt.Errorf("unsupported value type %T", value)
}

// scalarText quotes a string for flow context: plain when yaml.v3 would
// write it plain and it has no flow indicators, else double-quoted.
func scalarText(s string) (string, error) {
	out, err := yaml.Marshal(s)
	if err != nil {
		return "", err
	}
	text := strings.TrimSuffix(string(out), "\n")
	if s == "" || strings.ContainsAny(text, "\n,[]{}#") || strings.HasPrefix(text, "'") || strings.HasPrefix(text, "\"") || strings.HasPrefix(text, "|") || strings.HasPrefix(text, ">") {
		return doubleQuote(s), nil
	}
	return text, nil
}

// doubleQuote writes s as a YAML double-quoted scalar.
func doubleQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
