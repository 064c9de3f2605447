package signalling

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Pattern matches phone numbers or Matrix user IDs. It is either a glob, in
// which '*' matches any run of characters, '?' exactly one and every other
// character itself, or "re:<RE2 regex>" matched against the whole string.
// Policy, routes and trunks all use this one syntax.
type Pattern struct {
	src  string
	glob string         // when re == nil
	re   *regexp.Regexp // for "re:" patterns
}

// CompilePattern compiles a glob or "re:" pattern for any string.
func CompilePattern(s string) (Pattern, error) {
	if rest, ok := strings.CutPrefix(s, "re:"); ok {
		if rest == "" {
			return Pattern{}, errors.New("empty regular expression")
		}
		re, err := regexp.Compile(`^(?:` + rest + `)$`)
		if err != nil {
			return Pattern{}, fmt.Errorf("invalid regular expression: %w", err)
		}
		return Pattern{src: s, re: re}, nil
	}
	if s == "" {
		return Pattern{}, errors.New("empty pattern")
	}
	return Pattern{src: s, glob: s}, nil
}

// CompileNumberPattern compiles a pattern on E.164 numbers: a glob may hold
// only a leading '+', digits, '*' and '?' (or use "re:").
func CompileNumberPattern(s string) (Pattern, error) {
	if !strings.HasPrefix(s, "re:") {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= '0' && c <= '9' || c == '*' || c == '?' || c == '+' && i == 0) {
				return Pattern{}, errors.New("only a leading +, digits, * and ? are allowed (or use re:)")
			}
		}
	}
	return CompilePattern(s)
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Match reports whether s matches the pattern.
func (p Pattern) Match(s string) bool {
	if p.re != nil {
		return p.re.MatchString(s)
	}
	return p.src != "" && globMatch(p.glob, s)
}

// MatchAny reports whether s matches one of the patterns.
func MatchAny(ps []Pattern, s string) bool {
	for i := range ps {
		if ps[i].Match(s) {
			return true
		}
	}
	return false
}

// globMatch matches a glob with '*' and '?' against s, without allocating.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					_, size := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += size
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}
