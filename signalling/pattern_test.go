package signalling

import "testing"

func TestCompilePattern(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"+1*", "+15550100100", true},
		{"+1*", "+445550100", false},
		{"+1900*", "+19005550100", true},
		{"+1555???????", "+15550100100", true},
		{"+1555???????", "+155501001000", false},
		{"+1555", "+15550", false},
		{"@*:gw.test", "@alice:gw.test", true},
		{"@*:gw.test", "@alice:gwXtest", false},
		{"@*:gw.test", "@alice:gw.test.evil", false},
		{`re:\+1(555|800)\d+`, "+18005550100", true},
		{`re:\+1(555|800)\d+`, "+19005550100", false},
		{`re:\+1`, "+15550100", false},
		{"re:+1.*|+44.*", "+44", false},
	}
	for _, c := range cases {
		re, err := CompilePattern(c.pattern)
		if err != nil {
			if c.pattern == "re:+1.*|+44.*" {
				continue // invalid RE2: '+' without operand
			}
			t.Fatalf("CompilePattern(%q): %v", c.pattern, err)
		}
		if got := re.Match(c.s); got != c.want {
			t.Errorf("%q on %q = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}
