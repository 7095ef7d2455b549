package imageio

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Format names returned by Sniff and stored in Config.Format.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatGIF  = "gif"
	FormatWebP = "webp"
	FormatBMP  = "bmp"
)

// SniffLen is how many leading bytes Sniff needs to recognise every supported format.
const SniffLen = 16

var contentTypes = map[string]string{
	FormatJPEG: "image/jpeg",
	FormatPNG:  "image/png",
	FormatGIF:  "image/gif",
	FormatWebP: "image/webp",
	FormatBMP:  "image/bmp",
}

// Sniff returns the supported image format whose signature starts data, or "" when none
// does. Only the first SniffLen bytes are looked at.
func Sniff(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		return FormatGIF
	case len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")):
		return FormatWebP
	case len(data) >= 14 && data[0] == 'B' && data[1] == 'M':
		return FormatBMP
	}
	return ""
}

// IsImage reports whether data starts with the signature of a supported image format.
func IsImage(data []byte) bool { return Sniff(data) != "" }

// ContentType returns the MIME type of a supported format ("" for an unknown one).
func ContentType(format string) string { return contentTypes[format] }

// SniffContentType returns the MIME type of data's image format, or "" when data is not a
// supported image. Unlike net/http.DetectContentType it recognises WebP and BMP only by
// their full signatures and never guesses from text.
func SniffContentType(data []byte) string { return ContentType(Sniff(data)) }

// SniffReader reads up to SniffLen bytes from r and returns the format together with a
// reader that yields the whole stream again (the sniffed bytes followed by the rest).
func SniffReader(r io.Reader) (format string, whole io.Reader, err error) {
	buf := make([]byte, SniffLen)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", nil, fmt.Errorf("sniff image format: %w", err)
	}
	buf = buf[:n]
	return Sniff(buf), io.MultiReader(bytes.NewReader(buf), r), nil
}

// SniffFile returns the image format of the file at path from its leading bytes ("" when
// it is not a supported image).
func SniffFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fail(path, err)
	}
	defer f.Close()
	format, _, err := SniffReader(f)
	if err != nil {
		return "", fail(path, err)
	}
	return format, nil
}
