package node

import (
	"kith/share"
	"kith/tunnels"
)

// Swarming (see package share, swarm.go): the node serves the verified
// groups of the files it is downloading, in the scope of each download. A
// direct download is served to friends that ask Have on their share
// streams; an anonymous one only through tunnels, where the node answers a
// tunnel request for its root as a holder of the file would, so that no
// friend learns from its streams what it fetches anonymously.

// holdsPartial answers a tunnel request for target with the root of an
// anonymous download that can serve groups of it now.
func (s *shareService) holdsPartial(target [32]byte) ([32]byte, bool) {
	if s.n.cfg.NoSwarm || s.manager == nil {
		return [32]byte{}, false
	}
	for _, r := range s.manager.PartialRoots(share.ScopeAnonymous) {
		if tunnels.TargetForRoot(r) == target {
			return r, true
		}
	}
	return [32]byte{}, false
}
