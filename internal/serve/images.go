package serve

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// ImageStore keeps uploaded photos content-addressed under a directory. With a key, each
// photo is encrypted with AES-256-GCM (a random nonce per file, the address as additional
// data) and addressed by HMAC-SHA256(key, photo), so neither the bytes nor a plain hash of
// them are on disk; without a key it is addressed by SHA-256 and stored as is.
type ImageStore struct {
	dir  string
	key  []byte
	aead cipher.AEAD
}

// ErrImageNotFound is returned by ImageStore.Get for an unknown address.
var ErrImageNotFound = errors.New("image not found")

// NewImageStore stores images under dir; key is nil or a 32-byte AES-256 key.
func NewImageStore(dir string, key []byte) (*ImageStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	s := &ImageStore{dir: dir}
	if key != nil {
		if len(key) != 32 {
			return nil, fmt.Errorf("image store: key must be 32 bytes (AES-256), got %d", len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		s.aead, err = cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		s.key = append([]byte(nil), key...)
	}
	return s, nil
}

// ParseKey decodes a 32-byte key written as 64 hex digits or standard base64.
func ParseKey(text string) ([]byte, error) {
	t := strings.TrimSpace(text)
	if b, err := hex.DecodeString(t); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(t); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("image key must be 32 bytes written as 64 hex digits or base64")
}

// Encrypted reports whether images are encrypted at rest.
func (s *ImageStore) Encrypted() bool { return s.aead != nil }

// Address is the content address of data in this store.
func (s *ImageStore) Address(data []byte) string {
	if s.key != nil {
		m := hmac.New(sha256.New, s.key)
		m.Write(data)
		return hex.EncodeToString(m.Sum(nil))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (s *ImageStore) path(addr string) (string, error) {
	if len(addr) != 64 {
		return "", fmt.Errorf("invalid image address %q", addr)
	}
	if _, err := hex.DecodeString(addr); err != nil {
		return "", fmt.Errorf("invalid image address %q", addr)
	}
	ext := ".img"
	if s.aead != nil {
		ext = ".enc"
	}
	return filepath.Join(s.dir, addr[:2], addr+ext), nil
}

// Put stores data (once per content) and returns its address.
func (s *ImageStore) Put(data []byte) (string, error) {
	addr := s.Address(data)
	p, _ := s.path(addr)
	if _, err := os.Stat(p); err == nil {
		return addr, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("store image %s: %w", addr, err)
	}
	out := data
	if s.aead != nil {
		nonce := make([]byte, s.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return "", fmt.Errorf("store image %s: nonce: %w", addr, err)
		}
		out = s.aead.Seal(nonce, nonce, data, []byte(addr))
	}
	if err := fsutil.WriteFileAtomic(p, out, 0o600); err != nil {
		return "", fmt.Errorf("store image %s: %w", addr, err)
	}
	return addr, nil
}

// Get reads and, when encrypted, authenticates and decrypts the image at addr.
func (s *ImageStore) Get(addr string) ([]byte, error) {
	p, err := s.path(addr)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", addr, ErrImageNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", addr, err)
	}
	if s.aead == nil {
		return data, nil
	}
	n := s.aead.NonceSize()
	if len(data) < n {
		return nil, fmt.Errorf("image %s: encrypted file too short", addr)
	}
	plain, err := s.aead.Open(nil, data[:n], data[n:], []byte(addr))
	if err != nil {
		return nil, fmt.Errorf("image %s: decrypt (wrong key or corrupted file): %w", addr, err)
	}
	return plain, nil
}

// Delete removes the image at addr; a missing image is not an error.
func (s *ImageStore) Delete(addr string) error {
	p, err := s.path(addr)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete image %s: %w", addr, err)
	}
	return nil
}
