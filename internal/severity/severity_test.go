package severity

import "testing"

func TestConvert(t *testing.T) {
	tests := []struct {
		grade    int
		from, to Scale
		want     int
		ok       bool
	}{
		{0, Hayashi, Clinical4, 1, true},
		{1, Hayashi, Clinical4, 2, true},
		{2, Hayashi, Clinical4, 3, true},
		{3, Hayashi, Clinical4, 3, true},
		{2, Hayashi, CN2019, 2, true},
		{3, CN2019, Hayashi, 3, true},
		{0, Clinical4, Hayashi, 0, false}, // normal skin has no Hayashi grade
		{1, Clinical4, Hayashi, 0, true},
		{3, Clinical4, CN2019, 3, true},
		{2, CN2019, Clinical4, 2, true},
		{1, Clinical4, Clinical4, 1, true},
		{4, Hayashi, Clinical4, 0, false},
		{-1, Hayashi, Hayashi, 0, false},
	}
	for _, tc := range tests {
		got, ok := Convert(tc.grade, tc.from, tc.to)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("Convert(%d, %s, %s) = %d, %v; want %d, %v", tc.grade, tc.from, tc.to, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEveryGradeHasLabelAndRoundTrips(t *testing.T) {
	for _, s := range Scales {
		if s.NumGrades() != 4 {
			t.Errorf("%s has %d grades, want 4", s, s.NumGrades())
		}
		for g := 0; g < s.NumGrades(); g++ {
			l := s.Label(g)
			if l.EN == "" || l.ZH == "" {
				t.Errorf("%s grade %d has no label", s, g)
			}
			parsed, err := s.ParseGrade(s.Format(g))
			if err != nil || parsed != g {
				t.Errorf("%s: ParseGrade(Format(%d)) = %d, %v", s, g, parsed, err)
			}
		}
	}
}

func TestParseGrade(t *testing.T) {
	tests := []struct {
		scale   Scale
		text    string
		want    int
		wantErr bool
	}{
		{CN2019, "Ⅲ", 2, false},
		{CN2019, "iv", 3, false},
		{Hayashi, " 2 ", 2, false},
		{Hayashi, "4", 0, true},
		{Hayashi, "2x", 0, true},
		{Clinical4, "", 0, true},
	}
	for _, tc := range tests {
		got, err := tc.scale.ParseGrade(tc.text)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("%s.ParseGrade(%q) = %d, %v", tc.scale, tc.text, got, err)
		}
	}
	if _, err := ParseScale("GAGS"); err == nil {
		t.Error("ParseScale(GAGS) should fail")
	}
	if (Grade{Value: 5, Scale: Hayashi}).Validate() == nil {
		t.Error("grade 5 on hayashi should be invalid")
	}
}

func TestHayashiFromCount(t *testing.T) {
	for count, want := range map[int]int{0: 0, 5: 0, 6: 1, 20: 1, 21: 2, 50: 2, 51: 3, 400: 3} {
		if got := HayashiFromCount(count); got != want {
			t.Errorf("HayashiFromCount(%d) = %d, want %d", count, got, want)
		}
	}
}
