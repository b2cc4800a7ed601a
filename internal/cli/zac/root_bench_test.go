package zac

import "testing"

// BenchmarkNewRoot is the cost of building zac's whole command tree,
// which every zac process pays before it runs a command (issue 23: too
// small to make the construction lazy).
func BenchmarkNewRoot(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewRoot(&Options{})
	}
}
