package disjoint

import "testing"

func TestSets(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		unions [][2]int
		same   [][2]int
		apart  [][2]int
	}{
		{"singletons", 3, nil, nil, [][2]int{{0, 1}, {1, 2}}},
		{"chain links transitively", 5, [][2]int{{0, 1}, {1, 2}, {3, 4}}, [][2]int{{0, 2}, {2, 0}, {3, 4}}, [][2]int{{0, 3}, {2, 4}}},
		{"repeated union is harmless", 2, [][2]int{{0, 1}, {1, 0}, {0, 1}}, [][2]int{{0, 1}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.n)
			for _, u := range tc.unions {
				s.Union(u[0], u[1])
			}
			for _, p := range tc.same {
				if s.Find(p[0]) != s.Find(p[1]) {
					t.Errorf("%d and %d in different sets", p[0], p[1])
				}
			}
			for _, p := range tc.apart {
				if s.Find(p[0]) == s.Find(p[1]) {
					t.Errorf("%d and %d in one set", p[0], p[1])
				}
			}
		})
	}
}
