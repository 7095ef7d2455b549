package infer

import "github.com/acdtcm/acdtcm/internal/result"

// Fill turns a raw prediction into res's grade, label, confidence, probabilities and lesion
// findings (and the default disclaimer), exactly as Run does. Servers that batch model calls
// themselves use it so their results match the CLI's.
func Fill(res *result.DiagnosisResult, info ModelInfo, pred Prediction) { fill(res, info, pred) }
