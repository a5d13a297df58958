package f2f

import "fmt"

// Rename gives the friend named by ref (a peer ID or a name) a new name,
// not empty and checked as Add checks one. It changes nothing on error.
func (f *Friends) Rename(ref, name string) (Friend, error) {
	if name == "" {
		return Friend{}, fmt.Errorf("%w: empty", ErrBadName)
	}
	if err := CheckName(name); err != nil {
		return Friend{}, err
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.RLock()
	e, err := f.resolveLocked(ref)
	var rec friendRecord
	if err == nil {
		rec = recordOf(e)
	}
	f.mu.RUnlock()
	if err != nil {
		return Friend{}, err
	}
	rec.Name = name
	if err := f.write(e.ID, rec); err != nil {
		return Friend{}, fmt.Errorf("renaming friend: %w", err)
	}
	f.mu.Lock()
	e.Name = name
	out := copyFriend(e)
	f.mu.Unlock()
	return out, nil
}
