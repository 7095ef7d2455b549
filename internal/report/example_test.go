package report_test

import (
	"fmt"
	"os"

	"github.com/acdtcm/acdtcm/internal/report"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// A command streams results into a Writer as they arrive; a photo that failed keeps its row.
func ExampleNew() {
	w, err := report.New("csv", os.Stdout, report.Options{Lang: "zh"})
	if err != nil {
		fmt.Println(err)
		return
	}
	results := []*result.DiagnosisResult{
		{
			Image:         "face.jpg",
			Diagnosis:     severity.Hayashi.Label(0),
			Severity:      severity.Grade{Value: 0, Scale: severity.Hayashi},
			Confidence:    0.8,
			Probabilities: []float64{0.8, 0.15, 0.04, 0.01},
			TCMAnalysis: &result.TCMAnalysis{
				Syndrome: result.Named{ZH: "肺经风热证", EN: "Lung-meridian wind-heat"},
				Formula:  result.Named{ZH: "枇杷清肺饮加减", EN: "Pipa Qingfei Yin, modified"},
			},
		},
		{Image: "broken.jpg", Error: "decode broken.jpg: unexpected EOF"},
	}
	if err := w.Begin(); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		if err := w.Write(r); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// image,image_id,grade,scale,label,confidence,p0,p1,p2,p3,comedone,papule,pustule,nodule,lesions,syndrome,formula,referral,error
	// face.jpg,,0,hayashi,轻度,0.8000,0.8000,0.1500,0.0400,0.0100,,,,,,肺经风热证,枇杷清肺饮加减,,
	// broken.jpg,,,,,,,,,,,,,,,,,,decode broken.jpg: unexpected EOF
}
