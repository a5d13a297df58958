// Package node is kith's composition root: it owns a node's home folder
// (identity key, database, API socket), builds the libp2p host and every
// service on it in the right order, stops them in reverse order, and serves
// the local HTTP+JSON API through which the CLI (and later a web UI) drives
// the daemon. It is the only package that wires the others together. The
// API's types, error codes, event names and client are package node/api's,
// which clients import instead of this one.
package node
