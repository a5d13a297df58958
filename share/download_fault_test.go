package share

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestDownloadPartialTruncated truncates the partial file under a running
// download, between the moment the verifier takes written groups and the
// moment it reads them back through its mapping of the file, as another
// program (or a user freeing space) could. The download must fail with an
// error that says so, and the process must live: reading a mapped page past
// the end of a file raises SIGBUS, which kills a Go program unless the
// goroutine asked for faults to become panics.
func TestDownloadPartialTruncated(t *testing.T) {
	e := newDLEnv(t)
	_, link := e.file("cut.bin", dlSize)
	e.finder.set(newTestSource("a"))
	var m *Manager
	var once sync.Once
	hooks := &testHooks{beforeVerifyRead: func(first int64) {
		once.Do(func() {
			if err := os.Truncate(m.partialPath(link.Root), 0); err != nil {
				t.Error(err)
			}
		})
	}}
	m = e.managerWith(testTuning, hooks)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitInfo(t, m, link.Root, "the end", func(i DownloadInfo) bool {
		return i.State == StateDone || i.State == StateFailed
	})
	if info.State != StateFailed || !strings.Contains(info.Error, "partial file") {
		t.Fatalf("download of a truncated partial file: state %s, error %q; want failed, saying the partial file changed", info.State, info.Error)
	}
	waitEnded(t, m, link.Root)
	if _, err := os.Stat(m.partialPath(link.Root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left behind: %v", err)
	}
	// The manager still works: the same file downloads whole.
	addAgain(t, m, link)
	waitDone(t, m, link.Root)
}
