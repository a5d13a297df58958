package share

import (
	"os"
	"testing"
)

// BenchmarkWholeFileCheck is the pass that hashes a finished download, all
// of it, before it is placed (checkWhole): a 256 MiB file in the page
// cache, through its mapping, one goroutine per core. Run it at -cpu 1,2
// to see what the second core buys.
func BenchmarkWholeFileCheck(b *testing.B) {
	_, file := benchFile(b)
	tree, err := HashFile(file)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFileSize)
	for b.Loop() {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		root, err := rootOfFile(f, benchFileSize)
		f.Close()
		if err != nil || root != tree.Root {
			b.Fatal(err, root)
		}
	}
}
