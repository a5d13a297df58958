package share

import (
	"slices"
	"strings"
	"testing"
)

func TestKeywords(t *testing.T) {
	long := strings.Repeat("é", MaxWordLen) // two bytes each
	tests := []struct {
		in   string
		want []string
	}{
		{"Live at Wembley.FLAC", []string{"live", "at", "wembley", "flac"}},
		{"01 - In the Flesh?.mp3", []string{"01", "in", "the", "flesh", "mp3"}},
		{"the_The-THE", []string{"the"}},
		{"Björk – Jóga (live).ogg", []string{"björk", "jóga", "live", "ogg"}},
		{"東京 タワー.jpg", []string{"東京", "タワー", "jpg"}},
		{"ΑΘΗΝΑ", []string{"αθηνα"}},
		{"a\xffb", []string{"a", "b"}},
		{"...", nil},
		{"", nil},
		{long, []string{strings.Repeat("é", MaxWordLen/2)}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := Keywords(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Keywords(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, w := range got {
				if len(w) > MaxWordLen || strings.IndexByte(w, 0) >= 0 {
					t.Errorf("bad word %q", w)
				}
			}
		})
	}
}

func TestMatchWords(t *testing.T) {
	name := Keywords("Live at Wembley.FLAC")
	tests := []struct {
		query string
		want  bool
	}{
		{"wem", true},
		{"WEM LIVE", true},
		{"live flac", true},
		{"l a w f", true},
		{"wembleys", false},
		{"live mp3", false},
		{"embley", false},
	}
	for _, tt := range tests {
		if got := matchWords(Keywords(tt.query), name); got != tt.want {
			t.Errorf("matchWords(%q) = %v, want %v", tt.query, got, tt.want)
		}
	}
}
