package configs

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the key's path, e.g. "sip.trunks[0].port"; empty for the
	// file as a whole (a YAML syntax error).
	Path string
	// Message says what is wrong; it never contains a secret's value.
	Message string
	// Line is the 1-based line in the file, 0 when unknown.
	Line int
}

// String formats the problem as "path: message (line N)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	// File is the configuration file's path, empty when parsed from memory.
	File string
	// Problems are all problems found, in file/schema order.
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("configs: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if len(e.Problems) == 1 {
		b.WriteString("1 problem:")
	} else {
		fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// problemList collects problems while decoding or validating.
type problemList struct {
	problems []Problem
}

func (l *problemList) add(path string, line int, format string, args ...any) {
	l.problems = append(l.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...), Line: line})
}

// joinPath appends a mapping key to a path.
func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath appends a list index to a path.
func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// mapKeyPath appends a quoted map key to a path.
func mapKeyPath(parent, key string) string {
	return fmt.Sprintf("%s[%q]", parent, key)
}

// underPath reports whether path equals prefix or lies below it.
func underPath(path, prefix string) bool {
	if prefix == "" || path == prefix {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	c := path[len(prefix)]
	return c == '.' || c == '['
}

// parentPath strips the last element of a path; "" at the top.
func parentPath(path string) string {
	// Strip a trailing [..] (index or quoted key) or .key.
	if strings.HasSuffix(path, "]") {
		depth := 0
		inQuote := false
		for i := len(path) - 1; i >= 0; i-- {
			switch c := path[i]; {
			case c == '"' && (i == 0 || path[i-1] != '\\'):
				inQuote = !inQuote
			case !inQuote && c == ']':
				depth++
			case !inQuote && c == '[':
				depth--
				if depth == 0 {
					return path[:i]
				}
			}
		}
		return ""
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
