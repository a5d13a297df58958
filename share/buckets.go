package share

// Buckets owned by package share in kith.db, all in one place.
var (
	// bucketShares maps a shared folder's absolute path to a JSON shareRecord.
	bucketShares = []byte("share.shares")
	// bucketFiles maps a file key (share path, NUL, relative path with "/")
	// to a JSON fileRecord: size, mtime, root.
	bucketFiles = []byte("share.files")
	// bucketOutboards maps a root to its Bao outboard.
	bucketOutboards = []byte("share.outboards")
	// bucketRoots maps root || file key to nothing: which files have a root.
	bucketRoots = []byte("share.roots")
	// bucketWords maps lowercased word, NUL, file key to nothing: the
	// keyword index.
	bucketWords = []byte("share.words")
	// bucketDownloads maps a root to a JSON downloadRecord.
	bucketDownloads = []byte("share.downloads")
	// bucketBitmaps maps a root to the bitmap of verified groups of its
	// download.
	bucketBitmaps = []byte("share.bitmaps")
	// legacyBucketAnonymous is where package node kept the roots of
	// anonymous downloads before the mark moved into downloadRecord; a
	// Manager moves what it holds on open and deletes it.
	legacyBucketAnonymous = []byte("node.anonymous_downloads")
)
