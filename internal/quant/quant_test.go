package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// publishedNF4 are the 16 NF4 values as printed in the QLoRA paper (appendix E) and in
// bitsandbytes' functional.py.
var publishedNF4 = []float64{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

func TestNF4CodeBookIsPublished(t *testing.T) {
	for i, want := range publishedNF4 {
		if NF4Code[i] != float32(want) {
			t.Errorf("NF4Code[%d] = %.17g, published %.17g", i, NF4Code[i], want)
		}
	}
}

// TestNF4CodeBookConstruction rebuilds the code book as bitsandbytes' create_normal_map
// does (normal quantiles at linspace(0.9677083, 0.5, 9)[:-1] and linspace(…, 8)[:-1],
// negated for the negative half, zero, normalised by the maximum) and checks the stored
// values come from it.
func TestNF4CodeBookConstruction(t *testing.T) {
	const offset = 0.9677083
	ppf := func(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
	var v []float64
	for i := 0; i < 7; i++ { // negative half: linspace(offset, 0.5, 8)[:-1]
		v = append(v, -ppf(offset+(0.5-offset)*float64(i)/7))
	}
	v = append(v, 0)
	for i := 7; i >= 0; i-- { // positive half: linspace(offset, 0.5, 9)[:-1], ascending
		v = append(v, ppf(offset+(0.5-offset)*float64(i)/8))
	}
	mx := v[15]
	for i := range v {
		if got := v[i] / mx; math.Abs(got-float64(NF4Code[i])) > 1e-6 {
			t.Errorf("constructed NF4 value %d = %.9f, code book %.9f", i, got, NF4Code[i])
		}
	}
}

func TestDynamicCode(t *testing.T) {
	if DynamicCode[0] >= DynamicCode[255] {
		t.Fatal("not sorted")
	}
	zero, one := false, false
	for i, v := range DynamicCode {
		if i > 0 && v <= DynamicCode[i-1] {
			t.Fatalf("DynamicCode not strictly increasing at %d: %g <= %g", i, v, DynamicCode[i-1])
		}
		zero = zero || v == 0
		one = one || v == 1
	}
	if !zero || !one || DynamicCode[255] != 1 {
		t.Errorf("code lacks 0 or 1: first %g last %g", DynamicCode[0], DynamicCode[255])
	}
	// 127 negative values, zero, 127 positive values and 1; the smallest magnitude is
	// 0.55·10⁻⁶ (the single fraction item of exponent 10⁻⁶), the largest below 1 is
	// 0.99296875 (mean of the last two points of linspace(0.1, 1, 65)).
	if DynamicCode[127] != 0 || math.Abs(float64(DynamicCode[128])-0.55e-6) > 1e-12 || math.Abs(float64(DynamicCode[126])+0.55e-6) > 1e-12 {
		t.Errorf("values around zero: %g %g %g", DynamicCode[126], DynamicCode[127], DynamicCode[128])
	}
	if math.Abs(float64(DynamicCode[0])+0.99296875) > 1e-6 || math.Abs(float64(DynamicCode[254])-0.99296875) > 1e-6 {
		t.Errorf("extreme values %g, %g, want ∓0.99296875", DynamicCode[0], DynamicCode[254])
	}
}

func TestPack4RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 1001} {
		q := make([]uint8, n)
		for i := range q {
			q[i] = uint8(rng.IntN(16))
		}
		packed := Pack4(q)
		if len(packed) != (n+1)/2 {
			t.Fatalf("n=%d: %d bytes", n, len(packed))
		}
		got, err := Unpack4(packed, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range q {
			if got[i] != q[i] {
				t.Fatalf("n=%d: value %d unpacked as %d, packed %d", n, i, got[i], q[i])
			}
		}
		if n%2 == 1 && packed[len(packed)-1]&0x0f != 0 {
			t.Errorf("n=%d: padding nibble not zero", n)
		}
	}
	if got := Pack4([]uint8{0xA, 0x3}); got[0] != 0xA3 {
		t.Errorf("first value must take the high nibble: got %#x", got[0])
	}
	if _, err := Unpack4([]byte{1, 2}, 5); err == nil {
		t.Error("Unpack4 with a wrong count should fail")
	}
}

func TestHalfConversion(t *testing.T) {
	// Every finite half value survives half -> float32 -> half exactly.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		f := HalfToFloat32(uint16(h))
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {70000, 0x7c00}, {1.0 + 1.0/2048, 0x3c00}, // tie rounds to even
		{1.0 + 3.0/2048, 0x3c02}, {5.960464477539063e-08, 0x0001}, {1e-9, 0}, {0.000061035156, 0x0400},
	}
	for _, c := range cases {
		if got := Float32ToHalf(c.in); got != c.want {
			t.Errorf("Float32ToHalf(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func randomWeights(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
		if rng.IntN(500) == 0 { // a few outliers, as real weights have
			v[i] *= 8
		}
	}
	return v
}

// TestRoundTripBounds checks every reconstructed value against the method's worst-case
// bound given the stored scale, and the overall relative RMS against what the bit width
// allows for Gaussian weights.
func TestRoundTripBounds(t *testing.T) {
	nf4HalfGap := 0.0
	for i := 1; i < 16; i++ {
		nf4HalfGap = math.Max(nf4HalfGap, float64(NF4Code[i]-NF4Code[i-1])/2)
	}
	cases := []struct {
		m          Method
		opts       Options
		shape      []int
		maxRelRMS  float64 // measured on N(0, 0.02²) weights with 0.2% outliers
		perElement func(x float32, i int, q *Tensor, scales []float32, trueScale float64) float64
	}{
		{Int8, Options{}, []int{48, 96}, 0.015, func(x float32, i int, q *Tensor, s []float32, _ float64) float64 {
			return float64(s[i/96]) / 2
		}},
		{Q8_0, Options{}, []int{37, 70}, 0.012, func(x float32, i int, q *Tensor, s []float32, trueScale float64) float64 {
			return trueScale/2 + 127*math.Abs(trueScale-float64(s[i/32]))
		}},
		{Q4_0, Options{}, []int{37, 70}, 0.15, func(x float32, i int, q *Tensor, s []float32, trueScale float64) float64 {
			return math.Abs(trueScale) + 8*math.Abs(trueScale-float64(s[i/32]))
		}},
		{NF4, Options{NoDoubleQuant: true}, []int{33, 97}, 0.12, func(x float32, i int, q *Tensor, s []float32, trueScale float64) float64 {
			return nf4HalfGap * trueScale
		}},
		{NF4, Options{}, []int{300, 128}, 0.12, func(x float32, i int, q *Tensor, s []float32, trueScale float64) float64 {
			return nf4HalfGap*trueScale + math.Abs(trueScale-float64(s[i/64]))
		}},
	}
	for _, c := range cases {
		name := string(c.m)
		if c.m == NF4 && c.opts.NoDoubleQuant {
			name += "-nodq"
		}
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(len(name))))
			n := numElements(c.shape)
			x := randomWeights(rng, n, 0.02)
			q, err := Quantize(c.m, x, c.shape, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(q.Data) != dataBytes(c.m, c.shape) {
				t.Fatalf("%d data bytes, want %d", len(q.Data), dataBytes(c.m, c.shape))
			}
			y := q.Dequantize()
			scales := q.BlockScales()
			for i := range x {
				ts := trueScale(c.m, x, i, c.shape)
				bound := c.perElement(x[i], i, q, scales, ts)*(1+1e-5) + 1e-9
				if d := math.Abs(float64(x[i] - y[i])); d > bound {
					t.Fatalf("value %d: |%g - %g| = %g exceeds bound %g", i, x[i], y[i], d, bound)
				}
			}
			if disk, _ := LayoutBytes(c.m, c.shape, c.opts); disk != q.StoredBytes() {
				t.Errorf("LayoutBytes %d, stored %d", disk, q.StoredBytes())
			}
			e := Measure(x, y)
			t.Logf("%s shape %v: rel RMS %.4f, SNR %.1f dB, max abs %.2g, %.2f bits/weight", name, c.shape, e.RelRMS, e.SNRdB, e.MaxAbs, 8*float64(q.StoredBytes())/float64(n))
			if e.RelRMS > c.maxRelRMS {
				t.Errorf("relative RMS %.4f above %.4f", e.RelRMS, c.maxRelRMS)
			}
		})
	}
}

// trueScale is the unrounded scale the method computes for the block holding value i.
func trueScale(m Method, x []float32, i int, shape []int) float64 {
	var lo, hi int
	switch m {
	case Int8:
		cols := len(x) / shape[0]
		lo, hi = i/cols*cols, i/cols*cols+cols
	default:
		bs := m.BlockSize()
		lo, hi = i/bs*bs, min(len(x), i/bs*bs+bs)
	}
	amax, mx := 0.0, 0.0
	for _, v := range x[lo:hi] {
		if a := math.Abs(float64(v)); a > amax {
			amax, mx = a, float64(v)
		}
	}
	switch m {
	case Int8, Q8_0:
		return float64(float32(amax) / 127)
	case Q4_0:
		return float64(float32(mx) / -8)
	}
	return amax
}

func TestQuantizeEdgeCases(t *testing.T) {
	for _, m := range Methods {
		zeros := make([]float32, 64)
		q, err := Quantize(m, zeros, []int{2, 32}, Options{})
		if err != nil {
			t.Fatalf("%s zeros: %v", m, err)
		}
		for i, v := range q.Dequantize() {
			if v != 0 {
				t.Fatalf("%s: zero tensor dequantized to %g at %d", m, v, i)
			}
		}
		if _, err := Quantize(m, []float32{1, float32(math.NaN())}, []int{1, 2}, Options{}); err == nil {
			t.Errorf("%s: NaN input accepted", m)
		}
		if _, err := Quantize(m, []float32{1, 2, 3}, []int{2, 2}, Options{}); err == nil {
			t.Errorf("%s: wrong value count accepted", m)
		}
		if _, err := Quantize(m, []float32{1}, nil, Options{}); err == nil {
			t.Errorf("%s: scalar accepted", m)
		}
	}
	if _, err := Quantize(Q8_0, []float32{1e10, 1}, []int{1, 2}, Options{}); err == nil {
		t.Error("q8_0 scale beyond float16 accepted")
	}
	// q4_0 keeps the largest-magnitude value exact (it maps to q=0: -8·d = max).
	q, _ := Quantize(Q4_0, []float32{0.5, -2, 1}, []int{3}, Options{})
	if y := q.Dequantize(); y[1] != -2 {
		t.Errorf("q4_0 extreme value reconstructed as %g", y[1])
	}
}

func TestParseMethod(t *testing.T) {
	for _, s := range []string{"int8", "NF4", " q8_0", "q4_0"} {
		if _, err := ParseMethod(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseMethod("int4"); err == nil {
		t.Error("int4 accepted")
	}
}

func TestMeasure(t *testing.T) {
	e := Measure([]float32{3, 4}, []float32{3, 4})
	if e.RelRMS != 0 || !math.IsInf(e.SNRdB, 1) {
		t.Errorf("exact: %+v", e)
	}
	e = Measure([]float32{3, 4}, []float32{3, 4.5}) // noise 0.25, signal 25
	if math.Abs(e.RelRMS-0.1) > 1e-12 || math.Abs(e.SNRdB-20) > 1e-9 || e.MaxAbs != 0.5 {
		t.Errorf("got %+v, want rel 0.1, 20 dB, max 0.5", e)
	}
}
