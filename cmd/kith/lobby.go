package main

import "github.com/spf13/cobra"

// newLobbyCmd is `kith lobby`. (Placeholder until lobbies land.)
func newLobbyCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "lobby", Short: "chat lobbies (not built yet)", Hidden: true}
}
