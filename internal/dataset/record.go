// Package dataset holds acdtcm's canonical dataset manifest: JSON Lines, one Record per
// image, with image paths relative to the manifest file. Importers, the validator, the
// splitter and the augmenter all read and write this format; the source data is never
// modified in place.
package dataset

import (
	"slices"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// ManifestName is the conventional file name of a manifest inside a dataset directory.
const ManifestName = "manifest.jsonl"

// Lesion types used by the ACNE04 boxes and the annotation schema.
const (
	LesionComedone = "comedone" // whiteheads and blackheads
	LesionPapule   = "papule"
	LesionPustule  = "pustule"
	LesionNodule   = "nodule" // nodules and cysts
)

// LesionTypes lists the canonical lesion types in a stable order.
var LesionTypes = []string{LesionComedone, LesionPapule, LesionPustule, LesionNodule}

// LesionUnspecified is the type a model reports for lesions it counts without telling their
// type: the built-in grader does so when its training labels' lesion types only mirrored the
// grade (LesionTypesInformative). It is a prediction type, never an annotation type.
const LesionUnspecified = "lesion"

// ReportedLesionTypes lists the types a prediction may report, in output order.
var ReportedLesionTypes = slices.Concat(LesionTypes, []string{LesionUnspecified})

// Record is one annotated image.
type Record struct {
	ImageID     string       `json:"image_id"`
	Image       string       `json:"image"` // path relative to the manifest's directory
	Width       int          `json:"width,omitempty"`
	Height      int          `json:"height,omitempty"`
	PatientInfo *PatientInfo `json:"patient_info,omitempty"`
	Diagnosis   Diagnosis    `json:"diagnosis"`
	TCMSyndrome *TCMSyndrome `json:"tcm_syndrome,omitempty"`
	Treatment   *Treatment   `json:"treatment,omitempty"`
	Split       string       `json:"split,omitempty"`     // train, valid, test
	SourceID    string       `json:"source_id,omitempty"` // photos sharing a source must share a split
}

// PatientInfo describes the patient in the photo.
type PatientInfo struct {
	Age      *int   `json:"age,omitempty"`
	Gender   string `json:"gender,omitempty"`    // male, female
	SkinType string `json:"skin_type,omitempty"` // e.g. oily, dry, combination, or Fitzpatrick I-VI
}

// Diagnosis is the clinical annotation of one image.
type Diagnosis struct {
	Severity    *severity.Grade `json:"severity,omitempty"`
	Type        string          `json:"type,omitempty"` // e.g. acne vulgaris
	Location    []string        `json:"location,omitempty"`
	LesionCount *int            `json:"lesion_count,omitempty"`
	Lesions     []Lesion        `json:"lesions,omitempty"`
}

// Lesion is one annotated lesion.
type Lesion struct {
	Type string `json:"type"`
	Box  *Box   `json:"box,omitempty"`
}

// Box is an axis-aligned box in pixel coordinates of the image (x0,y0 inclusive top-left,
// x1,y1 bottom-right).
type Box struct {
	X0 float64 `json:"x0"`
	Y0 float64 `json:"y0"`
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
}

// TCMSyndrome is the TCM pattern annotation.
type TCMSyndrome struct {
	Pattern      string `json:"pattern,omitempty"`      // e.g. 肺经风热
	Constitution string `json:"constitution,omitempty"` // e.g. 湿热质
}

// Treatment is the treatment annotation.
type Treatment struct {
	WesternMedicine []string `json:"western_medicine,omitempty"`
	TCMPrescription string   `json:"tcm_prescription,omitempty"`
}
