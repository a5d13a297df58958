package main

import (
	"fmt"
	"strings"
	"time"

	"kith/node/api"
)

// printReach prints the reachability part of `kith status`.
func printReach(r *api.ReachStatus) {
	if r == nil {
		return
	}
	st := r.Reachability
	state := map[string]string{
		api.ReachPublic:  "directly reachable",
		api.ReachPrivate: "behind NAT (not reachable directly from outside)",
		api.ReachUnknown: "unknown",
	}[st.State]
	if state == "" {
		state = st.State
	}
	fmt.Printf("reach:     %s\n", state)
	fmt.Printf("           how: %s", st.How)
	if !st.Checked.IsZero() {
		fmt.Printf(" (%s ago)", time.Since(st.Checked).Round(time.Second))
	}
	fmt.Println()
	if len(st.Observed) > 0 {
		fmt.Printf("           friends see you at: %s\n", strings.Join(st.Observed, " "))
	}
	switch pm := r.PortMapping; {
	case !pm.Enabled:
		fmt.Println("port map:  off")
	case !pm.Gateway:
		fmt.Println("port map:  no UPnP / NAT-PMP gateway found")
	case len(pm.Mapped) == 0:
		fmt.Println("port map:  gateway found, no port mapped")
	default:
		fmt.Printf("port map:  %s\n", strings.Join(pm.Mapped, " "))
	}
	if len(r.Announced) > 0 {
		fmt.Printf("announced: %s\n", strings.Join(r.Announced, " "))
	}
	if len(r.Reservations) == 0 {
		fmt.Println("relays:    no reservation held")
	} else {
		var names []string
		for _, h := range r.Reservations {
			names = append(names, fmt.Sprintf("%s (until %s)", displayName(h.Name), h.Expires.Local().Format(time.TimeOnly)))
		}
		fmt.Printf("relays:    reserved on %s\n", strings.Join(names, ", "))
	}
	if rs := r.Relay; rs == nil {
		fmt.Println("relaying:  off (--no-relay)")
	} else {
		fmt.Printf("relaying:  %d circuits for friends now (%d in all, %d refused), %d reservations, %s relayed; cap %s, %d circuits\n",
			rs.Circuits, rs.CircuitsTotal, rs.CircuitsRefused, rs.Reservations, humanBytes(int64(rs.Bytes)), rateText(rs.Rate), rs.MaxCircuits)
	}
	if hp := r.HolePunches; hp.Attempts > 0 || hp.DirectDials > 0 {
		fmt.Printf("punches:   %d hole punches, %d succeeded, %d failed; %d direct upgrades\n", hp.Attempts, hp.Succeeded, hp.Failed, hp.DirectDials)
	}
	if r.Warning != "" {
		fmt.Printf("warning:   %s\n", r.Warning)
	}
}

// friendPath says how an online friend is reached, for `friend ls`.
func friendPath(f api.FriendInfo) string {
	switch f.Path {
	case "":
		return "-"
	case api.PathRelayed:
		return "relayed through " + displayName(f.Relay)
	}
	return f.Path
}
