package tokenizer

// byteToRune is GPT-2's byte-to-unicode table: printable bytes map to themselves, the other
// 68 bytes to code points 256, 257, ... in increasing byte order. Byte-level BPE works on
// these runes so every byte sequence has a printable spelling.
var byteToRune, runeToByte = buildByteTables()

func buildByteTables() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		printable := (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
		if printable {
			b2r[b] = rune(b)
		} else {
			b2r[b] = next
			next++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}

// byteLevel spells the UTF-8 bytes of s with byte-level runes.
func byteLevel(s string) []rune {
	out := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = byteToRune[s[i]]
	}
	return out
}

// fromByteLevel turns a byte-level spelling back into raw bytes; runes outside the table
// (never produced by the vocabulary) are dropped.
func fromByteLevel(token string, dst []byte) []byte {
	for _, r := range token {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
		}
	}
	return dst
}

// ByteTokens returns the byte-level spelling of each of the 256 byte values, in byte order:
// the base vocabulary of every byte-level BPE.
func ByteTokens() []string {
	out := make([]string, 256)
	for b := range out {
		out[b] = string(byteToRune[b])
	}
	return out
}
