//go:build experiments

package grader

// An opt-in experiment (build tag "experiments"), not part of the test suite: how much do the
// ACNE04 exporter's train-only augmentations move the grader's counts? Every train photo of
// the export carries salt-and-pepper noise on 0.1% of its pixels and every valid photo none,
// so valid photos lie outside the training photos' range in that one respect. The experiment
// runs the grader (flip-averaged, as diagnose) on every train and valid photo under input
// conditions applied to the decoded 640x640 photo before the resize:
//
//	none   the photo as decoded
//	sp     salt-and-pepper added on 0.1% of the pixels (half white, half black; seeded)
//	desp   isolated outlier pixels (far from the median of their 8 neighbours, all channels
//	       on one side) replaced by that median: removes the exporter's noise
//	blur   a Gaussian blur of sigma 0.7 px (the exporter resamples every train photo when it
//	       rotates, shears and crops it, so train photos are softer than valid ones)
//	sharpen an unsharp mask (sigma 1 px, amount 0.5)
//
// and writes per photo and condition the predicted total count and the number of outlier
// pixels desp finds in the photo as decoded. scripts/grader-experiments/domain_shift.py summarises the CSV.
//
//	go test -tags noxla,experiments ./internal/grader -run TestDomainExperiment -v -timeout 60m \
//	    -exp-domain-out /tmp/domain.csv [-exp-conditions none,sp,desp] [-exp-ckpt runs/grader/best.ckpt] [-exp-data DIR]

import (
	"flag"
	"fmt"
	"image"
	"image/draw"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/parallel"
)

var (
	expDomainOut  = flag.String("exp-domain-out", "", "CSV of per-photo counts under input conditions (the experiment runs only when set)")
	expConditions = flag.String("exp-conditions", "none,sp,desp", "comma-separated input conditions (none, sp, desp, blur, sharpen)")
)

// decodedPhoto is one photo as decoded and with the exporter's noise removed (desp).
type decodedPhoto struct {
	base, clean *image.RGBA
}

// domainConditions are the input conditions TestDomainExperiment can apply to a decoded photo.
var domainConditions = map[string]func(p decodedPhoto, seed uint64) image.Image{
	"none": func(p decodedPhoto, _ uint64) image.Image { return p.base },
	"sp": func(p decodedPhoto, seed uint64) image.Image {
		out := toRGBA(p.base)
		addSaltPepper(out, 0.001, seed)
		return out
	},
	"desp":    func(p decodedPhoto, _ uint64) image.Image { return p.clean },
	"blur":    func(p decodedPhoto, _ uint64) image.Image { return imaging.Blur(p.base, 0.7) },
	"sharpen": func(p decodedPhoto, _ uint64) image.Image { return imaging.Sharpen(p.base, 1) },
}

// outlierThreshold is how far (summed over the channels, 0-255 each) a pixel must lie from
// the median of its 8 neighbours for removeSaltPepper to treat it as noise.
const outlierThreshold = 300

func TestDomainExperiment(t *testing.T) {
	if *expDomainOut == "" {
		t.Skip("set -exp-domain-out to run the experiment")
	}
	b, all := experimentInputs(t)
	ck, err := ParseCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNativeNet(ck)
	if err != nil {
		t.Fatal(err)
	}
	size := ck.Header.Model.InputSize
	conds := strings.Split(*expConditions, ",")
	for _, c := range conds {
		if domainConditions[c] == nil {
			t.Fatalf("-exp-conditions: unknown condition %q", c)
		}
	}
	f, err := os.Create(*expDomainOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, "cond,split,source,id,grade,gt,count,count_flip,replaced")
	const chunk = 32
	for i0 := 0; i0 < len(all); i0 += chunk {
		i1 := min(len(all), i0+chunk)
		rows := make(map[string][][]uint8)
		for _, c := range conds {
			rows[c] = make([][]uint8, i1-i0)
		}
		replaced := make([]int, i1-i0)
		parallel.For(i1-i0, runtime.GOMAXPROCS(0), func(_, j int) { // each call writes only index j
			s := all[i0+j]
			img, _, err := imageio.DecodeFile(s.Path, imageio.DefaultLimits())
			if err != nil {
				t.Errorf("%s: %v", s.Path, err)
				return
			}
			p := decodedPhoto{base: toRGBA(img)}
			p.clean = toRGBA(p.base)
			replaced[j] = removeSaltPepper(p.clean, outlierThreshold)
			for _, c := range conds {
				rows[c][j] = Resize(domainConditions[c](p, uint64(i0+j)), size)
			}
		})
		if t.Failed() {
			t.FailNow()
		}
		g2 := n.head.outH * n.head.outW * NumTypes
		for _, c := range conds {
			var tot [2][]float64
			for fi, flip := range []bool{false, true} {
				dens := make([]float32, (i1-i0)*g2)
				counts := make([]float32, (i1-i0)*NumTypes)
				probs := make([]float32, (i1-i0)*NumGrades)
				if err := n.forward(rows[c], flip, dens, counts, probs); err != nil {
					t.Fatal(err)
				}
				tot[fi] = make([]float64, i1-i0)
				for j := range i1 - i0 {
					for k := range NumTypes {
						tot[fi][j] += float64(counts[j*NumTypes+k])
					}
				}
			}
			for j := range i1 - i0 {
				s := all[i0+j]
				fmt.Fprintf(f, "%s,%s,%s,%s,%d,%d,%g,%g,%d\n", c, s.Split, s.Source, s.ID, s.Grade, len(s.Boxes), tot[0][j], tot[1][j], replaced[j])
			}
		}
		if i0%(chunk*20) == 0 {
			t.Logf("%d / %d photos", i1, len(all))
		}
	}
	t.Logf("wrote %s", *expDomainOut)
}

// toRGBA copies img into a new *image.RGBA anchored at the origin.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

// addSaltPepper sets a fraction frac of img's pixels, drawn with a seeded generator, to white
// or black (each half the time), as the ACNE04 exporter's noise augmentation does.
func addSaltPepper(img *image.RGBA, frac float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5a17))
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	for range int(frac*float64(w*h) + 0.5) {
		x, y := r.IntN(w), r.IntN(h)
		v := uint8(0)
		if r.IntN(2) == 0 {
			v = 255
		}
		p := img.Pix[y*img.Stride+x*4:]
		p[0], p[1], p[2] = v, v, v
	}
}

// removeSaltPepper replaces every interior pixel that stands out from the per-channel median
// of its 8 neighbours (all three channels on the same side of it, the absolute differences
// summing to more than threshold) with that median, and returns how many it replaced.
// Decisions are made on the unmodified photo.
func removeSaltPepper(img *image.RGBA, threshold int) int {
	src := slices.Clone(img.Pix)
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	var nb [8]int
	n := 0
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			var med [3]int
			sum, pos, neg := 0, 0, 0
			for c := range 3 {
				k := 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						if dx != 0 || dy != 0 {
							nb[k] = int(src[(y+dy)*img.Stride+(x+dx)*4+c])
							k++
						}
					}
				}
				s := nb[:]
				slices.Sort(s)
				med[c] = (s[3] + s[4] + 1) / 2
				d := int(src[y*img.Stride+x*4+c]) - med[c]
				switch {
				case d > 0:
					pos++
					sum += d
				case d < 0:
					neg++
					sum -= d
				}
			}
			if sum > threshold && (pos == 3 || neg == 3) {
				p := img.Pix[y*img.Stride+x*4:]
				p[0], p[1], p[2] = uint8(med[0]), uint8(med[1]), uint8(med[2])
				n++
			}
		}
	}
	return n
}
