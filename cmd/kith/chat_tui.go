package main

import "errors"

// runChatTUI runs the interactive chat window. (Placeholder.)
func runChatTUI(g *globals) error { return errors.New("interactive chat is not built yet") }
