//go:build !unix

package share

import (
	"fmt"
	"os"
	"path/filepath"
)

// openInShare opens the file rel inside the share folder dir. Without the
// unix calls there is no open that refuses symlinks, so the path is only
// checked to be local.
func openInShare(dir, rel string) (*os.File, error) {
	p := filepath.FromSlash(rel)
	if !filepath.IsLocal(p) {
		return nil, fmt.Errorf("opening %q: path leaves the share", rel)
	}
	return os.Open(filepath.Join(dir, p))
}

// nameMax returns the longest file name, in bytes, assumed everywhere.
func nameMax(string) int { return MaxNameLen }
