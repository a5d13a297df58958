package sim

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPollLooksAgainAfterSlowCall: a look at the state that outlasts the
// limit (a process short of CPU) is not the last one: poll looks again
// before it gives up, and gives up only after a look that started late.
func TestPollLooksAgainAfterSlowCall(t *testing.T) {
	calls := 0
	err := poll(context.Background(), 20*time.Millisecond, "slow", func() (bool, string) {
		calls++
		if calls == 1 {
			time.Sleep(50 * time.Millisecond) // past the limit, then still not done
			return false, "not yet"
		}
		return true, ""
	})
	if err != nil {
		t.Fatalf("poll gave up on the state seen at the start of a slow look: %v", err)
	}
	err = poll(context.Background(), 20*time.Millisecond, "never", func() (bool, string) { return false, "never" })
	if !errors.Is(err, errPollTimeout) {
		t.Fatalf("poll of a state that never comes: %v", err)
	}
}
