package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (real fixture files); f.Add adds
// hand-written edge cases.

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"image_id":"a","image":"a.jpg","diagnosis":{"severity":{"value":1,"scale":"hayashi"}}}`))
	f.Add([]byte(`{"image_id":"a","image":"a.jpg","width":1,"height":2,"patient_info":{"age":30},"diagnosis":{"lesions":[{"type":"papule","box":{"x0":1e300,"y0":-0,"x1":2,"y1":3}}]},"tcm_syndrome":{"pattern":"\u80ba"},"split":"train","source_id":"1_2"}`))
	f.Add([]byte(`{"IMAGE_ID":"x","diagnosis":{}} `))
	f.Add([]byte(`{"diagnosis":null}{}`))
	f.Add([]byte("{\"image\":\"\xff\xfe\",\"diagnosis\":{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		// A parsed record survives a write/read round trip: writing it again gives the same
		// line (empty lists and nil lists both vanish under omitempty, so compare encodings).
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal parsed record: %v", err)
		}
		r2, err := ParseRecord(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		b2, _ := json.Marshal(r2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", b, b2)
		}
	})
}

func FuzzParseVOC(f *testing.F) {
	f.Add([]byte(`<annotation><size><width>640</width><height>640</height></size><object><name>papules</name><bndbox><xmin>1</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object></annotation>`))
	f.Add([]byte(`<annotation><size><width>1</width><height>1</height></size><object><name>x</name><bndbox><xmin>-1e7</xmin><xmax>Inf</xmax><ymin>0x1p3</ymin><ymax>1_0</ymax></bndbox></object></annotation>`))
	f.Add([]byte(`<annotation><size><width>640</width>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><annotation/>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><annotation>&a;</annotation>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseVOC(data)
		if err != nil {
			return
		}
		if a.Width <= 0 || a.Height <= 0 {
			t.Fatalf("accepted size %dx%d", a.Width, a.Height)
		}
		for _, o := range a.Objects {
			for _, v := range []float64{o.XMin, o.YMin, o.XMax, o.YMax} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("accepted non-finite coordinate in %+v", o)
				}
			}
			if o.XMax < o.XMin || o.YMax < o.YMin || o.Name == "" {
				t.Fatalf("accepted bad object %+v", o)
			}
		}
		if lesions, err := a.Lesions(); err == nil {
			rec := Record{Diagnosis: Diagnosis{Lesions: lesions}}
			if err := CheckRecordValues(&rec); err != nil {
				t.Fatalf("VOC lesions fail the record checks: %v", err)
			}
		}
	})
}

func FuzzParseShareGPT(f *testing.F) {
	f.Add([]byte(`[{"messages":[{"role":"user","content":"<image>q"},{"role":"assistant","content":"Severity: grade II (x) on the cn2019 scale.\nLesions: 3 in total (papule 3)."}],"images":["a.jpg"]}]`))
	f.Add([]byte(`{"conversations":[{"from":"human","value":"<image>"},{"from":"gpt","value":"极重度; 证型：肝郁气滞"}],"images":["b.png"]}` + "\n" + `{"messages":1}`))
	f.Add([]byte(`[{"messages":[{"role":"user","content":"<image>"},{"role":"assistant","content":"Lesions: 99999999999 in total (nodule 2000000000). grade 1"}],"images":["c"]}]`))
	f.Add([]byte(`[1, "x", null, {}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, errs, err := ParseShareGPT(data)
		if err != nil {
			return
		}
		for _, e := range errs {
			var se *SampleError
			if !errors.As(e, &se) {
				t.Fatalf("error %v is not a *SampleError", e)
			}
		}
		for _, s := range samples {
			for _, scale := range severity.Scales {
				rec, img, err := SampleRecord(s, scale)
				if err != nil {
					continue
				}
				if img == "" {
					t.Fatal("accepted an empty image path")
				}
				if err := CheckRecordValues(&rec); err != nil {
					t.Fatalf("record from a sample fails the record checks: %v", err)
				}
				if len(rec.Diagnosis.Lesions) > maxAnswerLesions {
					t.Fatalf("materialised %d lesions", len(rec.Diagnosis.Lesions))
				}
				checkAnswerRoundTrip(t, &rec)
			}
		}
	})
}

func FuzzParseAnnotation(f *testing.F) {
	f.Add([]byte(`{"image":"a.jpg","diagnosis":{"severity":{"value":3,"scale":"cn2019"},"lesion_count":2,"lesions":[{"type":"nodule"}]},"tcm_syndrome":{"pattern":"痰瘀互结","constitution":"x"}}`))
	f.Add([]byte(`{"diagnosis":{"severity":{"value":-1,"scale":"hayashi"}}}`))
	f.Add([]byte(`{"diagnosis":{"lesions":[{"type":"papule","box":{"x0":2,"y0":2,"x1":1,"y1":1}}]}}`))
	f.Add([]byte(`{"diagnosis":{"severity":{"value":1,"scale":"clinical4"}},"tcm_syndrome":{"pattern":"a\nSeverity: grade 3 (x) on the hayashi scale."}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseAnnotation(data)
		if err != nil {
			return
		}
		if err := CheckRecordValues(&rec); err != nil {
			t.Fatalf("accepted record fails its checks: %v", err)
		}
		if rec.Diagnosis.Severity != nil {
			checkAnswerRoundTrip(t, &rec)
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("Severity: grade 2 (severe, 重度) on the hayashi scale.\nLesions: 30 in total (comedone 5, papule 10, pustule 12, nodule 3).\nTCM syndrome: 湿热蕴结.")
	f.Add("grade: 3")
	f.Add("证型：肺经风热；体质：湿热质。中度")
	f.Fuzz(func(t *testing.T, text string) {
		for _, scale := range severity.Scales {
			a, err := ParseAnswer(text, scale)
			if err != nil {
				continue
			}
			if err := a.Grade.Validate(); err != nil {
				t.Fatalf("ParseAnswer(%q) gave an invalid grade: %v", text, err)
			}
			if a.LesionCount != nil && *a.LesionCount < 0 {
				t.Fatalf("negative lesion count from %q", text)
			}
		}
	})
}

// checkAnswerRoundTrip formats a record's answer and parses it back: the grade must survive.
func checkAnswerRoundTrip(t *testing.T, rec *Record) {
	t.Helper()
	answer, err := FormatAnswer(rec)
	if err != nil {
		t.Fatalf("FormatAnswer of a valid graded record: %v", err)
	}
	a, err := ParseAnswer(answer, severity.Hayashi)
	if err != nil {
		t.Fatalf("ParseAnswer(FormatAnswer) = %v for %q", err, answer)
	}
	if *a.Grade != *rec.Diagnosis.Severity {
		t.Fatalf("grade %+v came back as %+v from %q", *rec.Diagnosis.Severity, *a.Grade, answer)
	}
}
