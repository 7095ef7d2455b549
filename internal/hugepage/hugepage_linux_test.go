package hugepage

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/acdtcm/acdtcm/internal/procfs"
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
	huge, err := procfs.SmapsBytes(address(b), address(b)+uintptr(len(b)), "AnonHugePages")
	if err != nil {
		t.Fatal(err)
	}
	if huge < Size {
		t.Errorf("%d bytes of huge pages back the advised 32 MiB buffer (mode %q)", huge, strings.TrimSpace(string(mode)))
	}
}
