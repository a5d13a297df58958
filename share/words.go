package share

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keywords splits a file name or a search query into the words the keyword
// index knows: maximal runs of Unicode letters and digits, lowercased, each
// cut to MaxWordLen bytes, without repeats, in order of first appearance.
// Everything else separates words, so an extension is a word of its own:
// "Live at Wembley.FLAC" gives live, at, wembley, flac.
//
// The index stores the words of every file name, so this function must not
// change without a schema version bump: words it no longer yields for a name
// could not be found to be deleted.
func Keywords(s string) []string {
	var words []string
	for f := range strings.FieldsFuncSeq(s, notWordRune) {
		w := truncateUTF8(strings.ToLower(f), MaxWordLen)
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return words
}

// notWordRune reports whether r separates words. An invalid UTF-8 byte
// decodes as utf8.RuneError, which is not a letter, so it separates too.
func notWordRune(r rune) bool {
	return r == utf8.RuneError || !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// matchWords reports whether every query word is a prefix of some word of
// the name: the AND of prefix matches that Find answers.
func matchWords(query, name []string) bool {
	for _, q := range query {
		found := false
		for _, w := range name {
			if strings.HasPrefix(w, q) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
