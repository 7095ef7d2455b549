package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestRecordsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, harnessOpts{dir: dir})
	resp, body := h.do(h.diagnoseReq(makeJPEG(t, 40, 40, 160), nil, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("diagnose: %d %s", resp.StatusCode, body)
	}
	var res result.DiagnosisResult
	json.Unmarshal(decode(t, body).Data, &res)
	// Stop the first server and its database, then start a new one on the same directory.
	h.ts.Close()
	h.srv.closeModel()
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, harnessOpts{dir: dir})
	resp, body = h2.get("/api/v1/diagnoses/"+res.ImageID, "")
	if resp.StatusCode != 200 {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
	var rec Record
	json.Unmarshal(decode(t, body).Data, &rec)
	if rec.Result.Severity != res.Severity || rec.Result.Confidence != res.Confidence || rec.ModelVersion != "test-1" {
		t.Errorf("record after restart %+v differs from %+v", rec.Result, res)
	}
	if v, err := h2.store.SchemaVersion(context.Background()); err != nil || v != len(migrations) {
		t.Errorf("schema version %d (%v), want %d", v, err, len(migrations))
	}
}

func TestMigrationsAreVersionedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()
	for range 2 {
		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.(*sqlStore).db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) {
			t.Errorf("%d migrations recorded, want %d", n, len(migrations))
		}
		s.Close()
	}
}

func TestStoreListFilterAndRetention(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, sev := range []string{"mild", "moderate", "Moderate", "severe"} {
		rec := &Record{ID: string(rune('a' + i)), CreatedAt: base.AddDate(0, 0, i), InputHash: "h", ImageHash: "img" + sev,
			ModelName: "m", ModelVersion: "v", Severity: sev,
			Result: result.DiagnosisResult{Severity: severity.Grade{Value: i, Scale: severity.Hayashi}}}
		if err := s.Save(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		f    ListFilter
		want string
	}{
		{ListFilter{}, "dcba"},
		{ListFilter{Severity: "MODERATE"}, "cb"},
		{ListFilter{From: base.AddDate(0, 0, 1), To: base.AddDate(0, 0, 3)}, "cb"},
		{ListFilter{Limit: 2, Offset: 1}, "cb"},
	}
	for _, tc := range tests {
		recs, _, err := s.List(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, r := range recs {
			got.WriteString(r.ID)
		}
		if got.String() != tc.want {
			t.Errorf("filter %+v: %q, want %q", tc.f, got.String(), tc.want)
		}
	}
	hashes, err := s.DeleteBefore(ctx, base.AddDate(0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(hashes) != 2 {
		t.Errorf("retention returned image hashes %v", hashes)
	}
	if _, total, _ := s.List(ctx, ListFilter{}); total != 2 {
		t.Errorf("%d records after retention, want 2", total)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired record: %v", err)
	}
}

func TestEncryptedImageNeedsTheKey(t *testing.T) {
	dir := t.TempDir()
	key, err := ParseKey(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewImageStore(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	photo := makeJPEG(t, 48, 48, 77)
	addr, err := s.Put(photo)
	if err != nil {
		t.Fatal(err)
	}
	// On disk: neither the photo's bytes nor its plain SHA-256 address.
	plainAddr := (&ImageStore{}).Address(photo)
	if addr == plainAddr {
		t.Error("encrypted store addresses images by their plain SHA-256")
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	raw, _ := os.ReadFile(files[0])
	if bytes.Contains(raw, photo[:64]) || bytes.Contains(raw, photo[len(photo)-64:]) {
		t.Error("the stored file contains the photo in clear")
	}
	if got, err := s.Get(addr); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("read with the key: %v", err)
	}
	other, _ := NewImageStore(dir, bytes.Repeat([]byte{1}, 32))
	if _, err := other.Get(addr); err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Errorf("read with another key: %v", err)
	}
	nokey, _ := NewImageStore(dir, nil)
	if _, err := nokey.Get(addr); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("read without a key: %v", err)
	}
	// Tampering is detected.
	raw[len(raw)-1] ^= 1
	os.WriteFile(files[0], raw, 0o600)
	if _, err := s.Get(addr); err == nil {
		t.Error("tampered file decrypted")
	}
	if _, err := ParseKey("short"); err == nil {
		t.Error("short key accepted")
	}
}

func TestRetentionDeletesUnreferencedImages(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.Retention = time.Hour; c.Now = clock }})
	photo := makeJPEG(t, 40, 40, 60)
	if resp, body := h.do(h.diagnoseReq(photo, nil, "")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	addr := h.srv.cfg.Images.Address(photo)
	if _, err := h.srv.cfg.Images.Get(addr); err != nil {
		t.Fatalf("image not stored: %v", err)
	}
	now = now.Add(2 * time.Hour)
	n, err := h.srv.ApplyRetention(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("retention deleted %d images (%v), want 1", n, err)
	}
	if _, err := h.srv.cfg.Images.Get(addr); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("image after retention: %v", err)
	}
}
