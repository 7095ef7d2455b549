// Package result defines DiagnosisResult, the one result type every backend (the built-in
// grader, Qwen2.5-VL, a remote OpenAI-compatible server) produces and every output writer,
// `eval` and `serve` consume. Its JSON form is the API's DiagnosisResult.
package result

import (
	"time"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// Disclaimer is the default safety disclaimer attached to every result (the knowledge base
// may replace it with its sourced wording).
const Disclaimer = "This is decision support for research and education, not a medical diagnosis or prescription. Consult a licensed dermatologist or TCM practitioner before any treatment."

// DisclaimerZH is the Chinese wording of Disclaimer.
const DisclaimerZH = "本结果仅供科研与教学参考的辅助决策信息，不构成医学诊断或处方。任何治疗前请咨询执业皮肤科医师或中医师。"

// DiagnosisResult is the outcome of diagnosing one photo.
type DiagnosisResult struct {
	// ImageID and Image identify the input (Image is the path or upload name).
	ImageID string `json:"image_id,omitempty"`
	Image   string `json:"image,omitempty"`
	// Diagnosis is the bilingual label of the predicted grade, e.g. {"en":"moderate","zh":"中度"}.
	Diagnosis severity.Label `json:"diagnosis"`
	// Severity is the predicted grade with its scale.
	Severity severity.Grade `json:"severity"`
	// Confidence is the probability of the predicted grade.
	Confidence float64 `json:"confidence"`
	// Probabilities holds one probability per grade of Severity.Scale, in grade order.
	Probabilities []float64 `json:"probabilities"`
	// Lesions summarises lesion findings by type.
	Lesions []LesionFinding `json:"lesions,omitempty"`
	// Recommendations lists Western treatment options for the grade and findings.
	Recommendations []Recommendation `json:"recommendations,omitempty"`
	// TCMAnalysis is the TCM syndrome differentiation.
	TCMAnalysis *TCMAnalysis `json:"tcm_analysis,omitempty"`
	// Referral lists safety triggers that warrant seeing a clinician.
	Referral []Referral `json:"referral,omitempty"`
	// Disclaimer is the safety statement shown with every result.
	Disclaimer string `json:"disclaimer"`
	// DisclaimerZH is the Chinese wording of Disclaimer, for zh output (writers fall back to
	// the package's DisclaimerZH when it is empty and Disclaimer is the default).
	DisclaimerZH string `json:"disclaimer_zh,omitempty"`
	// ModelVersion identifies the model that produced the grade.
	ModelVersion string `json:"model_version"`
	// Timing is where the time went, in milliseconds.
	Timing Timing `json:"timing"`
	// Error is set (and the other fields are empty) when the photo could not be diagnosed.
	Error string `json:"error,omitempty"`
	// CreatedAt is when the result was produced.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// LesionFinding is the count (and boxes, when the model gives them) of one lesion type.
type LesionFinding struct {
	Type  string  `json:"type"` // comedone, papule, pustule, nodule (dataset.LesionTypes)
	Count float64 `json:"count"`
	Boxes []Box   `json:"boxes,omitempty"`
}

// Box is a lesion box in pixels of the input image, with the model's score.
type Box struct {
	X0    float64 `json:"x0"`
	Y0    float64 `json:"y0"`
	X1    float64 `json:"x1"`
	Y1    float64 `json:"y1"`
	Score float64 `json:"score,omitempty"`
}

// Recommendation is one treatment option, bilingual, with its source.
type Recommendation struct {
	Category string `json:"category"` // e.g. first_line, second_line, maintenance, caution
	EN       string `json:"en"`
	ZH       string `json:"zh"`
	Source   string `json:"source"`
	// Guideline names the guideline the option comes from (e.g. cn2019, aad2024), when any.
	Guideline string `json:"guideline,omitempty"`
	// Confidence is the knowledge base's evidence tag: V verified, S secondary, X synthesised.
	Confidence string `json:"confidence,omitempty"`
}

// TCMAnalysis is the TCM syndrome differentiation (辨证) of one result.
type TCMAnalysis struct {
	Syndrome Named `json:"syndrome"`
	// Secondary lists co-existing (兼夹) syndromes scoring close to the chosen one.
	Secondary          []Named         `json:"secondary,omitempty"`
	Constitution       *Named          `json:"constitution,omitempty"`
	TreatmentPrinciple Named           `json:"treatment_principle"`
	Formula            Named           `json:"formula"` // a reference formula, never a dosed prescription
	ExternalTreatment  []Named         `json:"external_treatment,omitempty"`
	Lifestyle          []Named         `json:"lifestyle,omitempty"`
	Reasoning          []string        `json:"reasoning,omitempty"`
	Scores             []SyndromeScore `json:"scores,omitempty"` // every syndrome's score, best first
	Source             string          `json:"source,omitempty"`
}

// Named is a bilingual name or sentence.
type Named struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// SyndromeScore is the rule engine's score for one syndrome with the reasons behind it.
type SyndromeScore struct {
	Syndrome string   `json:"syndrome"`
	Score    float64  `json:"score"`
	Reasons  []string `json:"reasons,omitempty"`
}

// Referral is one safety trigger.
type Referral struct {
	Code   string `json:"code"`
	EN     string `json:"en"`
	ZH     string `json:"zh"`
	Urgent bool   `json:"urgent,omitempty"`
	Source string `json:"source,omitempty"`
	// Confidence is the knowledge base's evidence tag: V verified, S secondary, X synthesised.
	Confidence string `json:"confidence,omitempty"`
}

// Timing records milliseconds spent per stage.
type Timing struct {
	DecodeMS     float64 `json:"decode_ms"`
	PreprocessMS float64 `json:"preprocess_ms"`
	ModelMS      float64 `json:"model_ms"`
	KnowledgeMS  float64 `json:"knowledge_ms"`
	TotalMS      float64 `json:"total_ms"`
}

// Referred reports whether any referral trigger fired.
func (r *DiagnosisResult) Referred() bool { return len(r.Referral) > 0 }
