package f2f

import "errors"

// Invite errors. Each names one way an invite can be wrong, so that a person
// pasting one learns what to do about it.
var (
	// ErrInviteEmpty: nothing was given.
	ErrInviteEmpty = errors.New("invite is empty")
	// ErrInviteGarbled: the text is not a kith invite at all.
	ErrInviteGarbled = errors.New("invite is garbled: it is not a kith invite")
	// ErrInviteTruncated: the text is the start of an invite, cut short.
	ErrInviteTruncated = errors.New("invite is truncated: copy the whole line")
	// ErrInviteSignature: the invite was altered after its owner signed it.
	ErrInviteSignature = errors.New("invite signature does not match: it was altered after it was made")
	// ErrInviteVersion: the invite was made by a kith with another format.
	ErrInviteVersion = errors.New("invite has an unsupported version")
	// ErrInviteTooLarge: longer than any invite kith makes.
	ErrInviteTooLarge = errors.New("invite is too large")
	// ErrInviteOwn: a node cannot befriend itself.
	ErrInviteOwn = errors.New("this is your own invite: give it to a friend and add theirs")
)

// Friend list errors.
var (
	// ErrAlreadyFriend: the peer is on the friend list already.
	ErrAlreadyFriend = errors.New("already a friend")
	// ErrNoSuchFriend: no friend matches the given peer ID or name.
	ErrNoSuchFriend = errors.New("no such friend")
	// ErrAmbiguousFriend: a name matches more than one friend.
	ErrAmbiguousFriend = errors.New("name matches more than one friend: use the peer ID")
	// ErrBadName: a nickname that cannot be stored.
	ErrBadName = errors.New("invalid name")
)

// ErrIdentityExists is returned when creating an identity over an existing one.
var ErrIdentityExists = errors.New("an identity already exists")
