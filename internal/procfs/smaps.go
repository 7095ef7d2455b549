// Package procfs reads the Linux /proc/self/smaps accounting that tests use to check what
// the kernel really did with a buffer (pages resident, huge pages backing it).
package procfs

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// SmapsBytes sums one field of /proc/self/smaps ("Rss", "AnonHugePages", ...) over the
// mappings that overlap the address range [lo, hi), in bytes.
func SmapsBytes(lo, hi uintptr, field string) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("read memory map: %w", err)
	}
	defer f.Close()
	var total int64
	overlap := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's header: "start-end perms ..."
			var start, end uintptr
			if _, err := fmt.Sscanf(fields[0], "%x-%x", &start, &end); err == nil {
				overlap = start < hi && end > lo
			}
			continue
		}
		if overlap && fields[0] == field+":" && len(fields) >= 2 {
			var kb int64
			if _, err := fmt.Sscanf(fields[1], "%d", &kb); err != nil {
				return 0, fmt.Errorf("/proc/self/smaps: %q: %w", line, err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("/proc/self/smaps: %w", err)
	}
	return total, nil
}
