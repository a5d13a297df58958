package share

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrateAnonymous moves the anonymous marks that package node kept in
// legacyBucketAnonymous into the downloads' records, then deletes that
// bucket. A mark of a download that is gone (cancelled) is dropped with
// it; so is a key that is not a root.
func migrateAnonymous(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		old := tx.Bucket(legacyBucketAnonymous)
		if old == nil {
			return nil
		}
		downloads := tx.Bucket(bucketDownloads)
		var roots [][32]byte
		old.ForEach(func(k, _ []byte) error {
			if len(k) == 32 {
				roots = append(roots, [32]byte(k))
			}
			return nil
		})
		for _, root := range roots {
			v := downloads.Get(root[:])
			var rec downloadRecord
			if v == nil || json.Unmarshal(v, &rec) != nil || rec.Anonymous {
				continue
			}
			rec.Anonymous = true
			if err := putRecord(tx, root, rec); err != nil {
				return err
			}
		}
		return tx.DeleteBucket(legacyBucketAnonymous)
	})
	if err != nil {
		return fmt.Errorf("moving the anonymous downloads' marks: %w", err)
	}
	return nil
}
