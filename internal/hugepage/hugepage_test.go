package hugepage

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestAligned: the advised part of a buffer starts and ends on huge page boundaries, lies
// inside the buffer, and leaves less than a huge page unadvised at either end.
func TestAligned(t *testing.T) {
	backing := make([]byte, 8*Size)
	base := int((Size - address(backing)%Size) % Size) // offset of the first boundary
	cases := []struct {
		name        string
		offset, len int
		wantPages   int
	}{
		{"empty", base, 0, 0},
		{"one page exactly", base, Size, 1},
		{"one byte short of a page", base, Size - 1, 0},
		{"unaligned start", base + 1, 2 * Size, 1},
		{"unaligned both ends", base + 4095, 3*Size + 5, 2},
		{"aligned, three pages and a bit", base, 3*Size + 7, 3},
		{"starts one byte before a boundary", base + Size - 1, 2*Size + 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := backing[tc.offset : tc.offset+tc.len]
			got := aligned(b)
			if len(got) != tc.wantPages*Size {
				t.Fatalf("aligned %d bytes, want %d huge pages", len(got), tc.wantPages)
			}
			if len(got) == 0 {
				return
			}
			start := int(address(got) - address(b))
			if address(got)%Size != 0 || start < 0 || start >= Size || start+len(got) > len(b) || len(b)-(start+len(got)) >= Size {
				t.Errorf("aligned part at offset %d, %d bytes, of a %d-byte buffer", start, len(got), len(b))
			}
		})
	}
}

// TestAdviseKeepsContents: advising never changes a buffer, and small buffers are left alone.
func TestAdviseKeepsContents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 100, MinBytes - 1, MinBytes, 5*Size + 123} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := bytes.Clone(b)
		accepted := Advise(b)
		if n < MinBytes && accepted {
			t.Errorf("%d bytes: advised a buffer under MinBytes", n)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("%d bytes: contents changed by Advise", n)
		}
	}
}
