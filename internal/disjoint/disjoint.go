// Package disjoint is a disjoint-set forest (union-find) over the indices 0..n-1: the groups
// of items linked by pairwise relations such as "these two photos match".
package disjoint

// Sets holds each index's parent; a root is its own parent.
type Sets []int

// New returns n singleton sets.
func New(n int) Sets {
	s := make(Sets, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Find returns the root of x's set (with path halving).
func (s Sets) Find(x int) int {
	for s[x] != x {
		s[x] = s[s[x]]
		x = s[x]
	}
	return x
}

// Union merges the sets of a and b.
func (s Sets) Union(a, b int) { s[s.Find(a)] = s.Find(b) }
