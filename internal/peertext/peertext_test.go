package peertext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain name.mp3", "plain name.mp3"},
		{"Café – ünïcode ✓ 日本", "Café – ünïcode ✓ 日本"},
		{"invoice\u202efdp.exe", `invoice\u202efdp.exe`},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"csi\u009b31m", `csi\u009b31m`},
		{"osc\x1b]0;title\x07", `osc\x1b]0;title\x07`},
		{"two\nlines\ttab", `two\x0alines\x09tab`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"iso\u2066late\u2069", `iso\u2066late\u2069`},
		{"sep\u2028x", `sep\u2028x`},
		{"del\x7f", `del\x7f`},
		{"zw\u200bsp", `zw\u200bsp`},
	} {
		if got := Line(c.in); got != c.want {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.want)
		}
		if Safe(c.in) != (c.in == c.want) {
			t.Errorf("Safe(%q) = %v", c.in, Safe(c.in))
		}
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"line one\nline two", "line one\nline two"},
		{"tab\there", "tab here"},
		{"over\rwrite", "overwrite"},
		{"esc\x1b[2J", `esc\x1b[2J`},
		{"rlo\u202e", `rlo\u202e`},
	} {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Whatever comes in, what goes out is valid UTF-8 with no character that
// could drive a terminal or reorder text.
func FuzzLine(f *testing.F) {
	f.Add("invoice\u202efdp.exe")
	f.Add("a\x1b]52;c;aGk=\x07")
	f.Add("\xff\xfe\u009b")
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Line(s), Text(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("invalid UTF-8 out of %q", s)
			}
			for _, r := range out {
				if r != '\n' && unsafe(r) {
					t.Fatalf("%q kept %U", s, r)
				}
			}
		}
		if strings.Contains(Line(s), "\n") {
			t.Fatalf("Line(%q) has a newline", s)
		}
	})
}
