package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Num is a metric value. NaN means "undefined" (e.g. AUC of a class absent from the ground
// truth) and is written to JSON as null; null reads back as NaN.
type Num float64

// Undefined is the value of a metric that cannot be computed.
var Undefined = Num(math.NaN())

// Defined reports whether the value is a finite number.
func (n Num) Defined() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

// MarshalJSON writes undefined values as null and numbers in the shortest exact form.
func (n Num) MarshalJSON() ([]byte, error) {
	if !n.Defined() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

// UnmarshalJSON reads null as undefined.
func (n *Num) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*n = Undefined
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}
