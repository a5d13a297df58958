package node

// lobbyService runs chat lobbies on the node. (Placeholder until lobbies
// land: it does nothing.)
type lobbyService struct{}

// startLobbies starts the node's lobbies.
func startLobbies(n *Node) (*lobbyService, error) { return &lobbyService{}, nil }

func (l *lobbyService) close() error { return nil }
