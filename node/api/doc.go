// Package api is kith's local API as its clients see it: the request and
// response types of the HTTP+JSON API that a node's daemon serves on
// HOME/api.sock, its error codes and the sentinel errors they stand for,
// the event stream's event type and event names, and a Client.
//
// The CLI and the web UI speak to the daemon through this package only:
// it imports no other kith package but small internal helpers, and its
// types are its own (the daemon converts the components' types into
// them), so the API's JSON is written down here, once, and a change to a
// component's Go types cannot change it by accident.
package api
