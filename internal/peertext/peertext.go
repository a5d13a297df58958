// Package peertext makes text that came from a peer safe to show: file and
// folder names, nicknames, lobby names and topics, chat and lobby messages.
// Such text is hostile wherever it is shown. On a terminal, C0 and C1
// control characters drive the terminal (ESC and CSI, U+009B, start escape
// sequences; OSC sequences can set the window title or write the
// clipboard); in any view, bidirectional overrides make "invoice\u202efdp.exe"
// read as "invoiceexe.pdf". This is the one sanitiser every output path
// uses: the CLI, the chat window and log lines.
//
// Dangerous characters are not dropped but shown as escapes (`\u202e`), so a
// name still reads as the odd thing it is and two names that differ only
// in them stay different.
package peertext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s made safe to show on one line: every control character
// (newlines and tabs too), bidirectional control, line or paragraph
// separator and invalid byte is replaced by a visible escape.
func Line(s string) string { return clean(s, false) }

// Text returns s made safe to show as text of several lines: as Line, but
// newlines are kept and tabs become spaces; carriage returns, which could
// overwrite what was shown, are dropped.
func Text(s string) string { return clean(s, true) }

// Safe reports whether s shows as itself on one line: Line(s) == s.
func Safe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unsafe(r) {
			return false
		}
	}
	return true
}

func clean(s string, multiline bool) string {
	if multiline {
		if safeText(s) {
			return s
		}
	} else if Safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case multiline && r == '\n':
			b.WriteByte('\n')
		case multiline && r == '\t':
			b.WriteByte(' ')
		case multiline && r == '\r':
		case unsafe(r):
			escape(&b, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func safeText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r != '\n' && unsafe(r) {
			return false
		}
	}
	return true
}

// unsafe reports whether r may not be shown as itself.
func unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case unicode.Is(unicode.Bidi_Control, r):
		return true
	case r == '\ufeff', r == '\u200b': // zero-width no-break space, zero-width space
		return true
	}
	return false
}

func escape(b *strings.Builder, r rune) {
	if r < 0x80 {
		fmt.Fprintf(b, `\x%02x`, r)
		return
	}
	fmt.Fprintf(b, `\u%04x`, r)
}
