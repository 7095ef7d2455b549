package serve

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// TestPostgresStore runs the Store contract against PostgreSQL when ACDTCM_TEST_POSTGRES
// holds a DSN of a scratch database (its diagnoses and schema_migrations tables are
// dropped first), e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable.
func TestPostgresStore(t *testing.T) {
	dsn := os.Getenv("ACDTCM_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("ACDTCM_TEST_POSTGRES is not set: PostgreSQL store test skipped")
	}
	ctx := context.Background()
	s, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := s.(*sqlStore).db
	for _, q := range []string{`DROP TABLE IF EXISTS diagnoses`, `DROP TABLE IF EXISTS schema_migrations`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Two replicas opening at once: the advisory lock serialises the migrations.
	errs := make(chan error, 2)
	stores := make(chan Store, 2)
	for range 2 {
		go func() {
			st, err := OpenPostgres(ctx, dsn)
			errs <- err
			stores <- st
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	a, b := <-stores, <-stores
	defer a.Close()
	defer b.Close()
	if v, err := a.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d (%v)", v, err)
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, sev := range []string{"mild", "moderate", "severe"} {
		rec := &Record{ID: string(rune('a' + i)), CreatedAt: base.AddDate(0, 0, i), InputHash: "h", ImageHash: "img",
			ModelName: "m", ModelVersion: "v", Severity: sev, Referred: i == 2,
			Result: result.DiagnosisResult{Severity: severity.Grade{Value: i, Scale: severity.Hayashi}, Confidence: 0.5}}
		if err := a.Save(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// Written by one replica, read by the other.
	got, err := b.Get(ctx, "c")
	if err != nil || got.Result.Severity.Value != 2 || !got.Referred || !got.CreatedAt.Equal(base.AddDate(0, 0, 2)) {
		t.Fatalf("get from the other replica: %+v %v", got, err)
	}
	recs, total, err := b.List(ctx, ListFilter{Severity: "moderate"})
	if err != nil || total != 1 || recs[0].ID != "b" {
		t.Errorf("list: %v %d %v", recs, total, err)
	}
	if n, _ := b.ImageRefs(ctx, "img"); n != 3 {
		t.Errorf("image refs %d", n)
	}
	if _, err := a.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(ctx, "a"); err != ErrNotFound {
		t.Errorf("second delete: %v", err)
	}
	if h, err := b.DeleteBefore(ctx, base.AddDate(0, 0, 2)); err != nil || len(h) != 1 {
		t.Errorf("retention: %v %v", h, err)
	}
}
