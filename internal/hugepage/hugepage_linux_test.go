package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestAdviseGivesHugePages: with transparent huge pages available ("always" or "madvise"),
// fresh memory advised before it is written is backed by huge pages (AnonHugePages of its
// mapping in /proc/self/smaps). The buffer is mapped directly, so that it is never memory the
// Go heap has already touched in 4 KiB pages (as a reused allocation would be).
func TestAdviseGivesHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages unavailable here (%q, %v)", strings.TrimSpace(string(mode)), err)
	}
	b, err := syscall.Mmap(-1, 0, 16*Size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	if !Advise(b) {
		t.Fatal("madvise(MADV_HUGEPAGE) refused although the kernel offers transparent huge pages")
	}
	for i := range b {
		b[i] = byte(i)
	}
	huge := anonHugeBytes(t, address(b), address(b)+uintptr(len(b)))
	if huge < Size {
		t.Errorf("%d bytes of huge pages back the advised 32 MiB buffer (mode %q)", huge, strings.TrimSpace(string(mode)))
	}
}

// anonHugeBytes sums AnonHugePages over the mappings in /proc/self/smaps that overlap [lo, hi).
func anonHugeBytes(t *testing.T, lo, hi uintptr) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total int64
	overlap := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			var start, end uintptr
			if _, err := fmt.Sscanf(fields[0], "%x-%x", &start, &end); err == nil {
				overlap = start < hi && end > lo
				continue
			}
		}
		if overlap && strings.HasPrefix(line, "AnonHugePages:") {
			var kb int64
			fmt.Sscanf(strings.TrimPrefix(line, "AnonHugePages:"), "%d", &kb)
			total += kb << 10
		}
	}
	return total
}
