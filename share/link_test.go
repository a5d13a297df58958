package share

import (
	"errors"
	"strings"
	"testing"
)

const testRootHex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

func TestParseLink(t *testing.T) {
	tests := []struct {
		in   string
		want Link
	}{
		{testRootHex, Link{Root: EmptyRoot, Size: UnknownSize}},
		{"  " + strings.ToUpper(testRootHex) + "\n", Link{Root: EmptyRoot, Size: UnknownSize}},
		{"kith://file/" + testRootHex, Link{Root: EmptyRoot, Size: UnknownSize}},
		{"kith://file/" + testRootHex + "?name=a+b%2Bc.txt&size=0", Link{Root: EmptyRoot, Name: "a b+c.txt", Size: 0}},
		{"KITH://File/" + testRootHex + "?size=1099511627776", Link{Root: EmptyRoot, Size: MaxFileSize}},
		{"kith://file/" + testRootHex + "?size=12&name=%C3%A9t%C3%A9..mp3&future=1", Link{Root: EmptyRoot, Name: "été..mp3", Size: 12}},
		{"kith://file/" + testRootHex + "?name=...", Link{Root: EmptyRoot, Name: "...", Size: UnknownSize}},
	}
	for _, tt := range tests {
		got, err := ParseLink(tt.in)
		if err != nil {
			t.Errorf("ParseLink(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseLink(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		back, err := ParseLink(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q via %q: %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestLinkString(t *testing.T) {
	l := Link{Root: EmptyRoot, Name: "my file.txt", Size: 42}
	want := "kith://file/" + testRootHex + "?name=my+file.txt&size=42"
	if got := l.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Link{Root: EmptyRoot, Size: UnknownSize}).String(); got != "kith://file/"+testRootHex {
		t.Errorf("bare String() = %q", got)
	}
}

func TestParseLinkErrors(t *testing.T) {
	base := "kith://file/" + testRootHex
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrBadRoot},
		{"short root", testRootHex[:63], ErrBadRoot},
		{"long root", testRootHex + "0", ErrBadRoot},
		{"non-hex root", "g" + testRootHex[1:], ErrBadRoot},
		{"http", "http://file/" + testRootHex, ErrBadScheme},
		{"wrong host", "kith://dir/" + testRootHex, ErrBadScheme},
		{"opaque", "kith:file/" + testRootHex, ErrBadScheme},
		{"no host", "kith:///" + testRootHex, ErrBadScheme},
		{"link without root", "kith://file/", ErrBadRoot},
		{"extra path", base + "/x", ErrBadRoot},
		{"short link root", "kith://file/abcd", ErrBadRoot},
		{"negative size", base + "?size=-1", ErrBadSize},
		{"plus size", base + "?size=+1", ErrBadSize},
		{"hex size", base + "?size=0x10", ErrBadSize},
		{"empty size", base + "?size=", ErrBadSize},
		{"overflow size", base + "?size=99999999999999999999", ErrBadSize},
		{"oversize", base + "?size=1099511627777", ErrFileTooLarge},
		{"slash name", base + "?name=a%2Fb", ErrBadName},
		{"backslash name", base + "?name=a%5Cb", ErrBadName},
		{"dotdot name", base + "?name=..", ErrBadName},
		{"dot name", base + "?name=.", ErrBadName},
		{"empty name", base + "?name=", ErrBadName},
		{"nul name", base + "?name=a%00b", ErrBadName},
		{"newline name", base + "?name=a%0Ab", ErrBadName},
		{"latin1 name", base + "?name=%E9", ErrBadName},
		{"long name", base + "?name=" + strings.Repeat("x", MaxNameLen+1), ErrBadName},
		{"repeated name", base + "?name=a&name=b", ErrBadLink},
		{"repeated size", base + "?size=1&size=1", ErrBadLink},
		{"bad escape", base + "?name=%zz", ErrBadLink},
		{"semicolon", base + "?name=a;size=1", ErrBadLink},
		{"fragment", base + "#x", ErrBadLink},
		{"user", "kith://me@file/" + testRootHex, ErrBadLink},
		{"too long", base + "?x=" + strings.Repeat("a", MaxLinkLen), ErrLinkTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLink(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseLink(%q) = %+v, %v; want %v", tt.in, l, err, tt.want)
			}
		})
	}
}

func FuzzParseLink(f *testing.F) {
	for _, s := range []string{
		testRootHex,
		"kith://file/" + testRootHex,
		"kith://file/" + testRootHex + "?name=a+b.txt&size=123",
		"kith://file/" + testRootHex + "?name=..&size=-1",
		"kith://file/" + testRootHex + "?name=%E9&size=1&size=2#frag",
		"kith:file/x",
		"http://example.com/",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			return
		}
		if l.Name != "" && CheckName(l.Name) != nil {
			t.Fatalf("accepted bad name %q", l.Name)
		}
		if l.Size < UnknownSize || l.Size > MaxFileSize {
			t.Fatalf("accepted size %d", l.Size)
		}
		out := l.String()
		back, err := ParseLink(out)
		if err != nil || back != l {
			t.Fatalf("%q parsed to %+v, printed as %q, parsed back to %+v, %v", s, l, out, back, err)
		}
	})
}
