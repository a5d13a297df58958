package seen

import (
	"testing"
	"time"
)

func TestSetAddHasExpire(t *testing.T) {
	s := New[int](3, time.Minute)
	t0 := time.Now()
	if !s.Add(1, t0) || s.Add(1, t0) {
		t.Fatal("Add reports new only the first time")
	}
	s.Add(2, t0.Add(time.Second))
	s.Add(3, t0.Add(2*time.Second))
	s.Add(4, t0.Add(3*time.Second)) // full: 1 goes
	if s.Has(1) || !s.Has(4) || s.Len() != 3 {
		t.Fatalf("after overflow: has 1 %v, has 4 %v, len %d", s.Has(1), s.Has(4), s.Len())
	}
	s.Expire(t0.Add(time.Minute + 1500*time.Millisecond)) // 2 is older than a minute
	if s.Has(2) || !s.Has(3) || !s.Has(4) {
		t.Fatal("expire removed the wrong ids")
	}
	s.Expire(t0.Add(time.Hour))
	if s.Len() != 0 || !s.Add(2, t0.Add(time.Hour)) {
		t.Fatal("an expired id is not new again")
	}
}
