package serve

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
)

// ErrNotFound is returned by Store.Get and Store.Delete for an unknown id.
var ErrNotFound = errors.New("diagnosis not found")

// Record is one stored diagnosis: a hash of its inputs, the content address of the photo,
// the model that produced it, when, and the full result.
type Record struct {
	ID           string                 `json:"id"`
	CreatedAt    time.Time              `json:"created_at"`
	InputHash    string                 `json:"input_hash"`
	ImageHash    string                 `json:"image_hash"`
	ModelName    string                 `json:"model_name"`
	ModelVersion string                 `json:"model_version"`
	Severity     string                 `json:"severity"`
	Referred     bool                   `json:"referred"`
	Result       result.DiagnosisResult `json:"result"`
}

// ListFilter selects and pages stored diagnoses, newest first.
type ListFilter struct {
	// From and To bound CreatedAt (From inclusive, To exclusive); zero means unbounded.
	From, To time.Time
	// Severity keeps records whose grade label (English, e.g. "moderate") matches, ignoring case.
	Severity string
	// Limit and Offset page the result (Limit 0 means 20).
	Limit, Offset int
}

// Store keeps diagnosis records. Implementations are safe for concurrent use.
type Store interface {
	// Save inserts a record.
	Save(ctx context.Context, rec *Record) error
	// Get returns the record with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)
	// List returns one page of matching records and the number of all matching records.
	List(ctx context.Context, f ListFilter) ([]Record, int, error)
	// Delete removes the record with id and returns its image hash, or ErrNotFound.
	Delete(ctx context.Context, id string) (string, error)
	// DeleteBefore removes records created before t and returns their image hashes.
	DeleteBefore(ctx context.Context, t time.Time) ([]string, error)
	// ImageRefs counts records that reference an image hash.
	ImageRefs(ctx context.Context, imageHash string) (int, error)
	// SchemaVersion is the highest applied migration.
	SchemaVersion(ctx context.Context) (int, error)
	// Close releases the database.
	Close() error
}

// migration is one versioned schema change.
type migration struct {
	version int
	stmts   []string
}

// sqlStore implements Store over database/sql; the dialect differs only in placeholders
// and migrations.
type sqlStore struct {
	db   *sql.DB
	name string // "sqlite" or "postgres", for errors
	ph   func(i int) string
}

// migrations are shared: both dialects accept this SQL (integer milliseconds for time,
// 0/1 integers for booleans, JSON as text).
var migrations = []migration{
	{1, []string{
		`CREATE TABLE IF NOT EXISTS diagnoses (
			id TEXT PRIMARY KEY,
			created_ms BIGINT NOT NULL,
			input_hash TEXT NOT NULL,
			image_hash TEXT NOT NULL,
			model_name TEXT NOT NULL,
			model_version TEXT NOT NULL,
			severity TEXT NOT NULL,
			referred INTEGER NOT NULL,
			result TEXT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS diagnoses_created ON diagnoses (created_ms)`,
	}},
	{2, []string{
		`CREATE INDEX IF NOT EXISTS diagnoses_severity ON diagnoses (severity, created_ms)`,
		`CREATE INDEX IF NOT EXISTS diagnoses_image ON diagnoses (image_hash)`,
	}},
}

// migrate applies every migration newer than the stored schema version, each in its own
// transaction, recording it in schema_migrations.
func (s *sqlStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("%s: create schema_migrations: %w", s.name, err)
	}
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= cur {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("%s: migration %d: %w", s.name, m.version, err)
		}
		for _, st := range m.stmts {
			if _, err := tx.ExecContext(ctx, st); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("%s: migration %d: %w", s.name, m.version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_ms) VALUES (`+s.ph(1)+`, `+s.ph(2)+`)`, m.version, time.Now().UnixMilli()); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("%s: record migration %d: %w", s.name, m.version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("%s: commit migration %d: %w", s.name, m.version, err)
		}
	}
	return nil
}

func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("%s: read schema version: %w", s.name, err)
	}
	return int(v.Int64), nil
}

func (s *sqlStore) Save(ctx context.Context, rec *Record) error {
	body, err := json.Marshal(rec.Result)
	if err != nil {
		return fmt.Errorf("%s: encode result %s: %w", s.name, rec.ID, err)
	}
	referred := 0
	if rec.Referred {
		referred = 1
	}
	q := `INSERT INTO diagnoses (id, created_ms, input_hash, image_hash, model_name, model_version, severity, referred, result) VALUES (` +
		s.phs(1, 9) + `)`
	if _, err := s.db.ExecContext(ctx, q, rec.ID, rec.CreatedAt.UnixMilli(), rec.InputHash, rec.ImageHash, rec.ModelName, rec.ModelVersion, strings.ToLower(rec.Severity), referred, string(body)); err != nil {
		return fmt.Errorf("%s: save diagnosis %s: %w", s.name, rec.ID, err)
	}
	return nil
}

// phs renders placeholders from..to, comma-separated.
func (s *sqlStore) phs(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		if i > from {
			b.WriteString(", ")
		}
		b.WriteString(s.ph(i))
	}
	return b.String()
}

const recordColumns = `id, created_ms, input_hash, image_hash, model_name, model_version, severity, referred, result`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (*Record, error) {
	var (
		rec      Record
		ms       int64
		referred int
		body     string
	)
	if err := sc.Scan(&rec.ID, &ms, &rec.InputHash, &rec.ImageHash, &rec.ModelName, &rec.ModelVersion, &rec.Severity, &referred, &body); err != nil {
		return nil, err
	}
	rec.CreatedAt = time.UnixMilli(ms).UTC()
	rec.Referred = referred != 0
	if err := json.Unmarshal([]byte(body), &rec.Result); err != nil {
		return nil, fmt.Errorf("decode stored result %s: %w", rec.ID, err)
	}
	return &rec, nil
}

func (s *sqlStore) Get(ctx context.Context, id string) (*Record, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM diagnoses WHERE id = `+s.ph(1), id)
	rec, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%s: get diagnosis %s: %w", s.name, id, err)
	}
	return rec, nil
}

func (s *sqlStore) List(ctx context.Context, f ListFilter) ([]Record, int, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, s.ph(len(args))))
	}
	if !f.From.IsZero() {
		add("created_ms >= %s", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		add("created_ms < %s", f.To.UnixMilli())
	}
	if f.Severity != "" {
		add("severity = %s", strings.ToLower(f.Severity))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM diagnoses`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("%s: count diagnoses: %w", s.name, err)
	}
	if f.Limit <= 0 {
		f.Limit = 20
	}
	args = append(args, f.Limit, f.Offset)
	q := `SELECT ` + recordColumns + ` FROM diagnoses` + cond + ` ORDER BY created_ms DESC, id DESC LIMIT ` + s.ph(len(args)-1) + ` OFFSET ` + s.ph(len(args))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: list diagnoses: %w", s.name, err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: list diagnoses: %w", s.name, err)
		}
		out = append(out, *rec)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s: list diagnoses: %w", s.name, err)
	}
	return out, total, nil
}

func (s *sqlStore) Delete(ctx context.Context, id string) (string, error) {
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT image_hash FROM diagnoses WHERE id = `+s.ph(1), id).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("%s: delete diagnosis %s: %w", s.name, id, err)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM diagnoses WHERE id = `+s.ph(1), id)
	if err != nil {
		return "", fmt.Errorf("%s: delete diagnosis %s: %w", s.name, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", ErrNotFound
	}
	return hash, nil
}

func (s *sqlStore) DeleteBefore(ctx context.Context, t time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT image_hash FROM diagnoses WHERE created_ms < `+s.ph(1), t.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("%s: retention: %w", s.name, err)
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: retention: %w", s.name, err)
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM diagnoses WHERE created_ms < `+s.ph(1), t.UnixMilli()); err != nil {
		return nil, fmt.Errorf("%s: retention: %w", s.name, err)
	}
	return hashes, nil
}

func (s *sqlStore) ImageRefs(ctx context.Context, imageHash string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM diagnoses WHERE image_hash = `+s.ph(1), imageHash).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: count image references: %w", s.name, err)
	}
	return n, nil
}

func (s *sqlStore) Close() error { return s.db.Close() }
