package grader

// Input channels. Besides the normalised RGB, the model can be given two cheap hand-made
// channels that make small lesions stand out for a network trained from scratch on ~1k
// photos: the local excess of redness (R-G) and of darkness (inverted luminance) over their
// box-blurred surroundings (radius highpassRadius pixels). Both are computed in Go.
const highpassRadius = 4

// inputChannels is the number of input channels for a model configuration.
func (mc ModelConfig) inputChannels() int {
	if mc.HighPass {
		return 5
	}
	return 3
}

// fillInput writes the network input of one photo (size*size RGB bytes, optionally mirrored
// horizontally and scaled by gain) into dst (size*size*inputChannels floats).
func fillInput(dst []float32, src []uint8, size int, flip bool, gain float32, highpass bool, scratch *featureScratch) {
	nc := 3
	if highpass {
		nc = 5
	}
	var red, dark []float32
	if highpass {
		scratch.ensure(size)
		red, dark = scratch.red, scratch.dark
	}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			sx := x
			if flip {
				sx = size - 1 - x
			}
			p := src[(y*size+sx)*3:]
			r := min(255, float32(p[0])*gain)
			g := min(255, float32(p[1])*gain)
			b := min(255, float32(p[2])*gain)
			q := dst[(y*size+x)*nc:]
			q[0], q[1], q[2] = (r/255-0.5)/0.25, (g/255-0.5)/0.25, (b/255-0.5)/0.25
			if highpass {
				red[y*size+x] = (r - g) / 32
				dark[y*size+x] = -(0.299*r + 0.587*g + 0.114*b) / 32
			}
		}
	}
	if !highpass {
		return
	}
	for c, ch := range [][]float32{red, dark} {
		blurred := scratch.blur(ch, size, highpassRadius)
		for i := 0; i < size*size; i++ {
			dst[i*nc+3+c] = ch[i] - blurred[i]
		}
	}
}

// featureScratch holds reusable buffers for fillInput (one per goroutine).
type featureScratch struct {
	size      int
	red, dark []float32
	out       []float32
	integral  []float64
}

func (s *featureScratch) ensure(size int) {
	if s.size == size {
		return
	}
	s.size = size
	s.red = make([]float32, size*size)
	s.dark = make([]float32, size*size)
	s.out = make([]float32, size*size)
	s.integral = make([]float64, (size+1)*(size+1))
}

// blur is a box blur of radius r (window clipped at the border) through an integral image.
func (s *featureScratch) blur(ch []float32, size, r int) []float32 {
	w := size + 1
	in := s.integral
	for x := 0; x <= size; x++ {
		in[x] = 0
	}
	for y := 1; y <= size; y++ {
		var row float64
		in[y*w] = 0
		for x := 1; x <= size; x++ {
			row += float64(ch[(y-1)*size+x-1])
			in[y*w+x] = in[(y-1)*w+x] + row
		}
	}
	for y := 0; y < size; y++ {
		y0, y1 := max(0, y-r), min(size, y+r+1)
		for x := 0; x < size; x++ {
			x0, x1 := max(0, x-r), min(size, x+r+1)
			sum := in[y1*w+x1] - in[y0*w+x1] - in[y1*w+x0] + in[y0*w+x0]
			s.out[y*size+x] = float32(sum / float64((y1-y0)*(x1-x0)))
		}
	}
	return s.out
}
