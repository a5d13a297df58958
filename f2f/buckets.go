package f2f

// Buckets owned by f2f in kith.db.
var (
	// bucketFriends maps a binary peer ID to a JSON friendRecord.
	bucketFriends = []byte("f2f.friends")
)
