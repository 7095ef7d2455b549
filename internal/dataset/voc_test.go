package dataset

import (
	"strings"
	"testing"
)

func TestParseVOC(t *testing.T) {
	const obj = `<object><name>papules</name><bndbox><xmin>1</xmin><xmax>5.5</xmax><ymin>2</ymin><ymax>6</ymax></bndbox></object>`
	tests := []struct {
		name    string
		xml     string
		wantErr string // substring; empty means success
		objects int
	}{
		{"valid", `<annotation><size><width>640</width><height>480</height></size>` + obj + obj + `</annotation>`, "", 2},
		{"no objects", `<?xml version="1.0"?><annotation><size><width>10</width><height>10</height></size></annotation>`, "", 0},
		{"comment after root", `<annotation><size><width>10</width><height>10</height></size></annotation><!-- x -->`, "", 0},
		{"truncated", `<annotation><size><width>10</width>`, "malformed VOC XML", 0},
		{"empty", ``, "malformed VOC XML", 0},
		{"wrong root", `<voc><size><width>10</width><height>10</height></size></voc>`, "malformed VOC XML", 0},
		{"missing size", `<annotation>` + obj + `</annotation>`, "missing <size/width>", 0},
		{"zero width", `<annotation><size><width>0</width><height>10</height></size></annotation>`, "out of range", 0},
		{"float width", `<annotation><size><width>10.5</width><height>10</height></size></annotation>`, "not an integer", 0},
		{"missing bndbox", `<annotation><size><width>9</width><height>9</height></size><object><name>papules</name></object></annotation>`, "missing <bndbox>", 0},
		{"missing name", `<annotation><size><width>9</width><height>9</height></size><object><bndbox><xmin>1</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object></annotation>`, "missing <name>", 0},
		{"bad coordinate", `<annotation><size><width>9</width><height>9</height></size><object><name>papules</name><bndbox><xmin>1x</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object></annotation>`, "bndbox/xmin: not a number", 0},
		{"nan coordinate", `<annotation><size><width>9</width><height>9</height></size><object><name>papules</name><bndbox><xmin>NaN</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object></annotation>`, "out of range", 0},
		{"inverted box", `<annotation><size><width>9</width><height>9</height></size><object><name>papules</name><bndbox><xmin>5</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object></annotation>`, "inverted box", 0},
		{"second root", `<annotation><size><width>9</width><height>9</height></size></annotation><annotation/>`, "after </annotation>", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseVOC([]byte(tc.xml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseVOC error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVOC: %v", err)
			}
			if len(a.Objects) != tc.objects {
				t.Fatalf("%d objects, want %d", len(a.Objects), tc.objects)
			}
		})
	}
	a, err := ParseVOC([]byte(`<annotation><size><width>640</width><height>480</height></size>` + obj + `</annotation>`))
	if err != nil {
		t.Fatal(err)
	}
	want := VOCObject{Name: "papules", XMin: 1, YMin: 2, XMax: 5.5, YMax: 6}
	if a.Width != 640 || a.Height != 480 || a.Objects[0] != want {
		t.Errorf("got %dx%d %+v, want 640x480 %+v", a.Width, a.Height, a.Objects[0], want)
	}
}

func TestVOCLesions(t *testing.T) {
	tests := []struct {
		names   []string
		want    []string
		wantErr string
	}{
		{[]string{"whitehead and blackhead", "papules", "pustules", "nodules and cysts"}, []string{LesionComedone, LesionPapule, LesionPustule, LesionNodule}, ""},
		{[]string{"Papules", " nodules  and cysts ", "comedone"}, []string{LesionPapule, LesionNodule, LesionComedone}, ""},
		{[]string{"papules", "scar", "scar", "mole"}, nil, `unknown lesion name(s) ["scar" "mole"]`},
	}
	for _, tc := range tests {
		a := &VOCAnnotation{Width: 10, Height: 10}
		for _, n := range tc.names {
			a.Objects = append(a.Objects, VOCObject{Name: n, XMax: 1, YMax: 1})
		}
		got, err := a.Lesions()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		for i, l := range got {
			if l.Type != tc.want[i] || l.Box == nil || l.Box.X1 != 1 {
				t.Errorf("%v: lesion %d = %+v, want type %s with box", tc.names, i, l, tc.want[i])
			}
		}
	}
}
