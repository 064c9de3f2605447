package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path, applies defaults, resolves
// relative paths against the file's directory and validates it. Every problem
// is reported in one *ValidationError. When the file could be decoded, the
// Config is returned alongside a *ValidationError so that tools can run more
// checks on it; it must not be used to run the gateway.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	cfg, err := Parse(data, filepath.Dir(abs))
	var verr *ValidationError
	if errors.As(err, &verr) {
		verr.File = path
	}
	return cfg, err
}

// Parse decodes YAML configuration data on top of Defaults, resolves
// relative paths against baseDir (when not empty) and validates the result.
// Unknown keys, type errors and validation problems are all reported in one
// *ValidationError; the Config is returned with it whenever the YAML itself
// could be read.
func Parse(data []byte, baseDir string) (*Config, error) {
	cfg, decodeProblems := decode(data, baseDir)
	if cfg == nil {
		return nil, &ValidationError{Problems: decodeProblems}
	}
	problems := decodeProblems
	for _, p := range cfg.validate() {
		if coveredBy(p.Path, decodeProblems) {
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		sortByLine(problems)
		return cfg, &ValidationError{Problems: problems}
	}
	return cfg, nil
}

// sortByLine orders problems by line, keeping those without a line last and
// the order of problems on one line.
func sortByLine(problems []Problem) {
	slices.SortStableFunc(problems, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
}

// Decode reads YAML configuration data on top of Defaults and resolves
// relative paths like Parse, but reports only syntax errors, unknown keys
// and type errors: it does not validate values.
func Decode(data []byte, baseDir string) (*Config, error) {
	cfg, problems := decode(data, baseDir)
	if len(problems) > 0 {
		return cfg, &ValidationError{Problems: problems}
	}
	return cfg, nil
}

// coveredBy reports whether a decode problem already concerns path.
func coveredBy(path string, problems []Problem) bool {
	for _, p := range problems {
		if p.Path != "" && underPath(path, p.Path) {
			return true
		}
	}
	return false
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode turns data into a Config; it returns nil when the YAML is unreadable.
func decode(data []byte, baseDir string) (*Config, []Problem) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		line := 0
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = "YAML syntax error: " + m[2]
		}
		return nil, []Problem{{Message: msg, Line: line}}
	}
	cfg := Defaults()
	d := &decoder{lines: map[string]int{}}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "", false)
	}
	cfg.lines = d.lines
	cfg.resolvePaths(baseDir)
	return cfg, d.problems
}

// resolvePaths makes file paths relative to baseDir absolute.
func (c *Config) resolvePaths(baseDir string) {
	reg := c.AppService.Registration
	if baseDir != "" && reg != "" && !filepath.IsAbs(reg) {
		c.AppService.Registration = filepath.Join(baseDir, reg)
	}
	c.Database.resolve(baseDir)
}

// decoder walks a yaml.Node tree against the Config struct, collecting every
// unknown key and type error instead of stopping at the first.
type decoder struct {
	problemList
	lines map[string]int
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *decoder) problem(path string, n *yaml.Node, format string, args ...any) {
	d.add(path, n.Line, format, args...)
}

// decode stores n into v. A null node leaves v at its default.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, secret bool) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			d.problem(path, n, "must be a duration like \"60s\", got %s", describe(n, false))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.problem(path, n, "must be a duration with a unit like \"60s\" or \"500ms\", got %s", describe(n, false))
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problem(path, n, "must be a string, got %s", describe(n, secret))
			return
		}
		v.SetString(n.Value)
	case t.Kind() == reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.problem(path, n, "must be an integer, got %s", describe(n, secret))
			return
		}
		v.SetInt(int64(i))
	case t.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.problem(path, n, "must be true or false, got %s", describe(n, secret))
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	default:
		panic(fmt.Sprintf("configs: no decoder for %s at %s", t, path))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(path, n, "must be a mapping of keys, got %s", describe(n, false))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || !f.IsExported() {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kpath := joinPath(path, key)
		if first, dup := seen[key]; dup {
			d.problem(kpath, k, "duplicate key (first given at line %d)", first)
			continue
		}
		seen[key] = k.Line
		idx, ok := fields[key]
		if !ok {
			msg := "unknown key"
			if s := closest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.problem(kpath, k, "%s", msg)
			continue
		}
		d.lines[kpath] = k.Line
		_, secret := v.Field(idx).Interface().(Secret)
		d.decode(val, v.Field(idx), kpath, secret)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.problem(path, n, "must be a list, got %s", describe(n, false))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		elem := s.Index(i)
		if def, ok := elem.Addr().Interface().(defaulter); ok {
			def.setDefaults()
		}
		d.decode(item, elem, indexPath(path, i), false)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(path, n, "must be a mapping, got %s", describe(n, false))
		return
	}
	t := v.Type()
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kpath := mapKeyPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.problem(path, k, "keys must be strings, got %s", describe(k, false))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.problem(kpath, k, "duplicate key (first given at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[kpath] = k.Line
		elem := reflect.New(t.Elem()).Elem()
		d.decode(val, elem, kpath, false)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
	}
	v.Set(m)
}

// describe names a node's kind and, unless secret, its value.
func describe(n *yaml.Node, secret bool) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		kind := "a string"
		switch n.Tag {
		case "!!int", "!!float":
			kind = "a number"
		case "!!bool":
			kind = "a boolean"
		}
		if secret {
			return kind
		}
		return fmt.Sprintf("%s %q", kind, n.Value)
	}
	return "an unexpected value"
}

// closest returns the candidate within edit distance 2 of s, if any.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
