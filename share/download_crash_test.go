package share

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDownloadCrashWhilePlacing stops a download as a crash would between
// linking the finished file into place and recording the download as done:
// the database is copied at that moment (a consistent snapshot, what a
// kill -9 leaves) and put back for a new manager, with the partial file
// still there (crash right after the link) or already removed (crash right
// after its removal). The source is offline by then. The new manager must
// find the file in place and record the download as done there: not fetch
// it again, not wait for a source, not make "name (2).ext".
func TestDownloadCrashWhilePlacing(t *testing.T) {
	for _, partialKept := range []bool{true, false} {
		name := map[bool]string{true: "partial kept", false: "partial removed"}[partialKept]
		t.Run(name, func(t *testing.T) {
			e := newDLEnv(t)
			data, link := e.file("placed.mkv", dlSize)
			e.finder.set(newTestSource("a"))
			snapshot := filepath.Join(t.TempDir(), "crash.db")
			var m *Manager
			hooks := &testHooks{afterPlace: func(string) {
				err := m.cfg.DB.View(func(tx *bolt.Tx) error { return tx.CopyFile(snapshot, 0o600) })
				if err != nil {
					t.Error(err)
				}
			}}
			m = e.managerWith(testTuning, hooks)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDone(t, m, link.Root)
			dest := info.Path
			m.Close()

			// The crash: the database as it was at the hook, the source gone.
			e.db.Close()
			if err := os.Rename(snapshot, e.dbPath); err != nil {
				t.Fatal(err)
			}
			e.openDB()
			if partialKept {
				os.MkdirAll(filepath.Join(e.dir, ".partial"), 0o700)
				if err := os.Link(dest, m.partialPath(link.Root)); err != nil {
					t.Fatal(err)
				}
			}
			e.finder.set()
			m2 := e.manager(testTuning)
			info = waitDone(t, m2, link.Root)
			if info.Path != dest {
				t.Errorf("done at %s; want %s, where it was placed", info.Path, dest)
			}
			ents, _ := os.ReadDir(e.dir)
			var names []string
			for _, de := range ents {
				names = append(names, de.Name())
			}
			if len(ents) != 2 { // .partial and placed.mkv
				t.Errorf("downloads folder holds %v; want .partial and placed.mkv", names)
			}
			checkDone(t, m2, info, data)
		})
	}
}
