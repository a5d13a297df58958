package main

import (
	"net"
	"os"
)

// sdNotify sends a state line ("READY=1", "STOPPING=1") to the service
// manager when kith runs under systemd with Type=notify (NOTIFY_SOCKET is
// set); elsewhere it does nothing. It is the whole sd_notify protocol kith
// needs: one datagram to a unix socket, abstract when the name starts with @.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
