//go:build unix && !linux

package share

// openBeneath opens rel beneath the folder dfd, one name at a time.
func openBeneath(dfd int, rel string) (int, error) { return openWalk(dfd, rel) }

// nameMax returns the longest file name, in bytes, assumed everywhere.
func nameMax(string) int { return MaxNameLen }
