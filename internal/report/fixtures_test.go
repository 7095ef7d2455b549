package report

import (
	"encoding/xml"
	"os"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// The fixtures are hand-built results, not model output. The two photos and their lesion boxes
// are from ACNE04 (Wu et al., ICCV 2019; academic use) via the Roboflow "acne04-detection"
// export (CC BY 4.0); see testdata/ATTRIBUTION.md. The boxes are that export's annotations.

const (
	photoModerate = "testdata/acne04-levle1_11.jpg"
	photoSevere   = "testdata/acne04-levle3_62.jpg"
)

// vocBoxes reads a Pascal VOC file and returns its boxes grouped by acdtcm lesion type.
func vocBoxes(t testing.TB, path string) map[string][]result.Box {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Objects []struct {
			Name string `xml:"name"`
			Box  struct {
				XMin float64 `xml:"xmin"`
				XMax float64 `xml:"xmax"`
				YMin float64 `xml:"ymin"`
				YMax float64 `xml:"ymax"`
			} `xml:"bndbox"`
		} `xml:"object"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	types := map[string]string{
		"whitehead and blackhead": "comedone", "papules": "papule",
		"pustules": "pustule", "nodules and cysts": "nodule",
	}
	out := map[string][]result.Box{}
	for _, o := range doc.Objects {
		typ, ok := types[o.Name]
		if !ok {
			t.Fatalf("%s: unknown lesion class %q", path, o.Name)
		}
		out[typ] = append(out[typ], result.Box{X0: o.Box.XMin, Y0: o.Box.YMin, X1: o.Box.XMax, Y1: o.Box.YMax})
	}
	return out
}

func finding(typ string, boxes []result.Box) result.LesionFinding {
	return result.LesionFinding{Type: typ, Count: float64(len(boxes)), Boxes: boxes}
}

// fixtures returns four results: a moderate case with a full TCM analysis, a severe case with
// an urgent referral, a photo that failed to decode, and a cn2019 result from an upload (no
// file, so no thumbnail) with fractional lesion counts.
func fixtures(t testing.TB) []*result.DiagnosisResult {
	t.Helper()
	created := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)
	mod := vocBoxes(t, "testdata/acne04-levle1_11.xml")
	sev := vocBoxes(t, "testdata/acne04-levle3_62.xml")
	return []*result.DiagnosisResult{
		{
			ImageID:       "levle1_11",
			Image:         photoModerate,
			Diagnosis:     severity.Hayashi.Label(1),
			Severity:      severity.Grade{Value: 1, Scale: severity.Hayashi},
			Confidence:    0.71,
			Probabilities: []float64{0.12, 0.71, 0.14, 0.03},
			Lesions: []result.LesionFinding{
				{Type: "comedone", Count: 2},
				finding("pustule", mod["pustule"]),
			},
			Recommendations: []result.Recommendation{
				{Category: "first_line", EN: "Topical combination: retinoid + benzoyl peroxide ± topical antibiotic", ZH: "外用维A酸 + 过氧化苯甲酰 ± 外用抗生素", Source: "S12", Guideline: "cn2019", Confidence: "V"},
				{Category: "second_line", EN: "Oral doxycycline with topical retinoid and BPO if extensive", ZH: "皮损广泛时口服多西环素，联合外用维A酸及过氧化苯甲酰", Source: "S34", Guideline: "aad2024", Confidence: "V"},
				{Category: "maintenance", EN: "Topical retinoid ± BPO after clearance", ZH: "皮损消退后外用维A酸 ± 过氧化苯甲酰维持", Source: "S12", Confidence: "V"},
				{Category: "caution", EN: "No antibiotic monotherapy; pair antibiotics with BPO", ZH: "避免单用抗生素，抗生素须联合过氧化苯甲酰", Source: "S34", Confidence: "V"},
			},
			TCMAnalysis: &result.TCMAnalysis{
				Syndrome:           result.Named{ZH: "肠胃湿热证", EN: "Intestine-stomach damp-heat"},
				Secondary:          []result.Named{{ZH: "肺经风热证", EN: "Lung-meridian wind-heat"}},
				Constitution:       &result.Named{ZH: "湿热质", EN: "Damp-heat constitution"},
				TreatmentPrinciple: result.Named{ZH: "清热除湿解毒", EN: "Clear heat, drain dampness, resolve toxin"},
				Formula:            result.Named{ZH: "茵陈蒿汤加减", EN: "Yinchenhao Tang, modified"},
				ExternalTreatment:  []result.Named{{ZH: "颠倒散外敷", EN: "Diandao San paste applied externally"}},
				Lifestyle: []result.Named{
					{ZH: "少食辛辣、油腻、甜食", EN: "Less spicy, greasy and sweet food"},
					{ZH: "规律作息，勿挤压皮损", EN: "Regular sleep; never squeeze lesions"},
				},
				Reasoning: []string{"pustules dominate (16) → 湿热", "no nodules → not 痰湿瘀滞"},
				Scores: []result.SyndromeScore{
					{Syndrome: "肠胃湿热证", Score: 0.62},
					{Syndrome: "肺经风热证", Score: 0.41},
					{Syndrome: "痰湿瘀滞证", Score: 0.08},
				},
				Source: "《中医外科学》 [S47]",
			},
			Disclaimer:   result.Disclaimer,
			ModelVersion: "grader-fixture-1",
			Timing:       result.Timing{DecodeMS: 4, PreprocessMS: 2, ModelMS: 31, KnowledgeMS: 1, TotalMS: 38},
			CreatedAt:    created,
		},
		{
			ImageID:       "levle3_62",
			Image:         photoSevere,
			Diagnosis:     severity.Hayashi.Label(3),
			Severity:      severity.Grade{Value: 3, Scale: severity.Hayashi},
			Confidence:    0.64,
			Probabilities: []float64{0.01, 0.05, 0.30, 0.64},
			Lesions:       []result.LesionFinding{finding("nodule", sev["nodule"])},
			Recommendations: []result.Recommendation{
				{Category: "first_line", EN: "Oral isotretinoin (specialist supervision)", ZH: "口服异维A酸（专科医师指导下）", Source: "S24", Guideline: "aad2024", Confidence: "V"},
				{Category: "caution", EN: "Isotretinoin is absolutely contraindicated in pregnancy", ZH: "妊娠期绝对禁用异维A酸", Source: "S37", Confidence: "V"},
			},
			TCMAnalysis: &result.TCMAnalysis{
				Syndrome:           result.Named{ZH: "痰湿瘀滞证", EN: "Phlegm-damp with stasis"},
				TreatmentPrinciple: result.Named{ZH: "除湿化痰，活血散结", EN: "Drain dampness, transform phlegm, invigorate blood, dissipate nodules"},
				Formula:            result.Named{ZH: "二陈汤合桃红四物汤加减", EN: "Erchen Tang with Taohong Siwu Tang, modified"},
				Source:             "《中医外科学》 [S47]",
			},
			Referral: []result.Referral{
				{Code: "nodulocystic", EN: "Nodulo-cystic acne: see a dermatologist", ZH: "结节囊肿型痤疮：请到皮肤科就诊", Source: "S25", Confidence: "V"},
				{Code: "scarring_risk", EN: "Risk of scarring: treat early", ZH: "有留疤风险：应尽早治疗", Urgent: true, Source: "S25"},
			},
			Disclaimer:   result.Disclaimer,
			ModelVersion: "grader-fixture-1",
			Timing:       result.Timing{TotalMS: 41},
			CreatedAt:    created,
		},
		{
			ImageID:   "blurry",
			Image:     "photos/blurry.heic",
			Error:     "decode photos/blurry.heic: image: unknown format",
			CreatedAt: created,
		},
		{
			ImageID:       "upload-7f3a",
			Diagnosis:     severity.CN2019.Label(1),
			Severity:      severity.Grade{Value: 1, Scale: severity.CN2019},
			Confidence:    0.55,
			Probabilities: []float64{0.30, 0.55, 0.12, 0.03},
			Lesions: []result.LesionFinding{
				{Type: "comedone", Count: 6.4},
				{Type: "papule", Count: 9.2},
			},
			TCMAnalysis: &result.TCMAnalysis{
				Syndrome:           result.Named{ZH: "肺经风热证", EN: "Lung-meridian wind-heat"},
				TreatmentPrinciple: result.Named{ZH: "疏风清肺", EN: "Disperse wind, clear the lung"},
				Formula:            result.Named{ZH: "枇杷清肺饮加减", EN: "Pipa Qingfei Yin, modified"},
			},
			Disclaimer:   "Research use only.",
			DisclaimerZH: "仅供研究使用。",
			ModelVersion: "qwen2.5-vl-3b-lora-fixture",
		},
		{ // a model that counts lesions without telling their type (the built-in grader)
			ImageID:       "upload-untyped",
			Diagnosis:     severity.Hayashi.Label(2),
			Severity:      severity.Grade{Value: 2, Scale: severity.Hayashi},
			Confidence:    0.58,
			Probabilities: []float64{0.02, 0.30, 0.58, 0.10},
			Lesions:       []result.LesionFinding{{Type: "lesion", Count: 23.6}},
			Disclaimer:    result.Disclaimer,
			ModelVersion:  "grader-fixture-1",
		},
	}
}
