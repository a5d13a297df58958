package api

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Checks a client makes before it asks the daemon, so that bad input gets
// a clear error at once (and a chat window keeps the line being typed).
// The daemon checks again; node's tests hold these to the components'
// own checks.

// CheckText reports whether text can be sent as a chat or lobby message:
// not blank, at most MaxTextSize bytes, UTF-8.
func CheckText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return ErrEmptyText
	case len(text) > MaxTextSize:
		return fmt.Errorf("%w (%d bytes)", ErrTextTooLong, len(text))
	case !utf8.ValidString(text):
		return ErrBadText
	}
	return nil
}

// lobbyIDLen is the length of a lobby id in hex digits.
const lobbyIDLen = 32

// ParseLobbyID checks a lobby id as a user typed it and returns it in the
// form the daemon prints (lower-case hex).
func ParseLobbyID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) != lobbyIDLen {
		return "", fmt.Errorf("%w: want %d hex digits, got %d characters", ErrBadLobbyID, lobbyIDLen, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("%w: not hex", ErrBadLobbyID)
	}
	return hex.EncodeToString(b), nil
}
