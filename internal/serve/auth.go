package serve

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Role is what an API key may do: viewers read, doctors also diagnose, admins also delete.
type Role int

// Roles in increasing privilege.
const (
	RoleNone Role = iota
	RoleViewer
	RoleDoctor
	RoleAdmin
)

// String returns the role's name as ParseRole accepts it (viewer, doctor, admin).
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleDoctor:
		return "doctor"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole parses admin, doctor or viewer.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "admin":
		return RoleAdmin, nil
	case "doctor":
		return RoleDoctor, nil
	case "viewer":
		return RoleViewer, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want admin, doctor or viewer)", s)
}

// APIKey is one configured key. Only its SHA-256 is kept.
type APIKey struct {
	Name string
	Role Role
	hash [sha256.Size]byte
}

// Keys authenticates API keys. A nil *Keys means authentication is off.
type Keys struct {
	keys []APIKey
}

// NewKeys builds a key set from role/key pairs.
func NewKeys(pairs map[string]Role) *Keys {
	k := &Keys{}
	for key, role := range pairs {
		k.keys = append(k.keys, APIKey{Name: fmt.Sprintf("%s-%d", role, len(k.keys)+1), Role: role, hash: sha256.Sum256([]byte(key))})
	}
	return k
}

// ParseKeys reads keys, one per line as "<role> <key>" or "<role>:<key>" (blank lines and
// # comments ignored; an optional third field names the key for logs). name labels errors.
func ParseKeys(data []byte, name string) (*Keys, error) {
	k := &Keys{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(strings.Replace(t, ":", " ", 1))
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%s:%d: want \"<role> <key> [name]\"", name, line)
		}
		role, err := ParseRole(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(f[1]) < 16 {
			return nil, fmt.Errorf("%s:%d: key shorter than 16 characters", name, line)
		}
		kn := fmt.Sprintf("%s-line%d", role, line)
		if len(f) == 3 {
			kn = f[2]
		}
		k.keys = append(k.keys, APIKey{Name: kn, Role: role, hash: sha256.Sum256([]byte(f[1]))})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("%s: no API keys", name)
	}
	return k, nil
}

// LoadKeys reads keys from a file (see ParseKeys) or, when file is empty, from the
// environment variable env holding "role:key" entries separated by commas or newlines.
func LoadKeys(file, env string) (*Keys, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("API keys: %w", err)
		}
		return ParseKeys(data, file)
	}
	v := os.Getenv(env)
	if v == "" {
		return nil, fmt.Errorf("API keys: neither a keys file nor $%s is set", env)
	}
	return ParseKeys([]byte(strings.ReplaceAll(v, ",", "\n")), "$"+env)
}

// Lookup returns the key matching the presented secret. Every configured key is compared
// (in constant time, on SHA-256 digests so lengths do not leak) before answering.
func (k *Keys) Lookup(secret string) (APIKey, bool) {
	h := sha256.Sum256([]byte(secret))
	var found APIKey
	match := 0
	for _, key := range k.keys {
		if subtle.ConstantTimeCompare(h[:], key.hash[:]) == 1 {
			found = key
			match = 1
		}
	}
	return found, match == 1 && secret != ""
}

// presentedKey reads the key from "Authorization: Bearer <key>" or "X-API-Key".
func presentedKey(r *http.Request) string {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}
