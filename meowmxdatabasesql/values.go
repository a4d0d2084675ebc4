package meowmxdatabasesql

import (
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// textValue is a statement argument as a driver takes it: nil, int64,
// float64, bool or time.Time as they are, everything else as a string in
// PostgreSQL's input syntax (a [16]byte is a UUID, a slice an array, a
// byte slice text).
func textValue(a any) (driver.Value, error) {
	switch v := a.(type) {
	case nil:
		return nil, nil
	case string, int64, float64, bool, time.Time:
		return v, nil
	case []byte:
		if v == nil {
			return nil, nil
		}
		return string(v), nil
	case time.Duration:
		// An interval, as pgx sends a duration.
		return strconv.FormatInt(v.Microseconds(), 10) + " microseconds", nil
	case driver.Valuer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil, nil
		}
		value, err := v.Value()
		if err != nil {
			return nil, err
		}
		return textValue(value)
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, nil
		}
		return textValue(rv.Elem().Interface())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return int64(u), nil
		}
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Array:
		if rv.Len() == 16 && rv.Type().Elem().Kind() == reflect.Uint8 {
			var id [16]byte
			reflect.Copy(reflect.ValueOf(id[:]), rv)
			return uuidText(id), nil
		}
	case reflect.Slice:
		if rv.IsNil() {
			return nil, nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return string(rv.Bytes()), nil
		}
		var b strings.Builder
		b.WriteByte('{')
		for i := range rv.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			el, err := textValue(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			if el == nil {
				b.WriteString("NULL")
				continue
			}
			b.WriteByte('"')
			for _, r := range elementText(el) {
				if r == '"' || r == '\\' {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			b.WriteByte('"')
		}
		b.WriteByte('}')
		return b.String(), nil
	}
	return nil, fmt.Errorf("meowmxdatabasesql: cannot send a %T", a)
}

// elementText is a driver value in an array literal.
func elementText(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

func uuidText(id [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	h := strings.ReplaceAll(strings.Trim(s, "{}"), "-", "")
	if len(h) != 32 {
		return id, fmt.Errorf("%q is not a UUID", s)
	}
	_, err := hex.Decode(id[:], []byte(h))
	return id, err
}

// rows is a *sql.Rows as pgx.Rows.
type rows struct {
	r      *sql.Rows
	values []any
	ptrs   []any
	err    error
	closed bool
}

func newRows(r *sql.Rows) *rows { return &rows{r: r} }

func (r *rows) Close() {
	if !r.closed {
		r.closed = true
		if err := r.r.Close(); err != nil && r.err == nil {
			r.err = pgError(err)
		}
	}
}

func (r *rows) Err() error {
	if r.err != nil {
		return r.err
	}
	return pgError(r.r.Err())
}

func (r *rows) CommandTag() pgconn.CommandTag { return pgconn.CommandTag{} }

func (r *rows) FieldDescriptions() []pgconn.FieldDescription {
	names, _ := r.r.Columns()
	fds := make([]pgconn.FieldDescription, len(names))
	for i, n := range names {
		fds[i].Name = n
	}
	return fds
}

func (r *rows) Next() bool {
	if r.closed || r.err != nil {
		return false
	}
	if !r.r.Next() {
		r.Close()
		return false
	}
	if r.values == nil {
		cols, err := r.r.Columns()
		if err != nil {
			r.err = err
			r.Close()
			return false
		}
		r.values = make([]any, len(cols))
		r.ptrs = make([]any, len(cols))
		for i := range r.values {
			r.ptrs[i] = &r.values[i]
		}
	}
	if err := r.r.Scan(r.ptrs...); err != nil {
		r.err = err
		r.Close()
		return false
	}
	return true
}

func (r *rows) Scan(dest ...any) error {
	if len(dest) != len(r.values) {
		return fmt.Errorf("meowmxdatabasesql: %d destinations for %d columns", len(dest), len(r.values))
	}
	for i, d := range dest {
		if err := assign(d, r.values[i]); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

func (r *rows) Values() ([]any, error) { return append([]any(nil), r.values...), nil }

func (r *rows) RawValues() [][]byte { return nil }

func (r *rows) Conn() *pgx.Conn { return nil }

// row is QueryRow's result.
type row struct {
	r   pgx.Rows
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.r.Close()
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.r.Scan(dest...); err != nil {
		return err
	}
	r.r.Close()
	return r.r.Err()
}

// assign stores src, a value database/sql scanned (nil, int64, float64,
// bool, []byte, string, time.Time), in dest as pgx would have.
func assign(dest, src any) error {
	switch d := dest.(type) {
	case nil:
		return nil
	case *any:
		*d = src
		return nil
	case sql.Scanner:
		return d.Scan(src)
	case *pgtype.DriverBytes:
		b, err := bytesOf(src)
		*d = b
		return err
	case *time.Time:
		t, ok := src.(time.Time)
		if !ok {
			// 'infinity', say, which pgx refuses too.
			return fmt.Errorf("cannot scan %v (a %T) into a time.Time", src, src)
		}
		*d = t
		return nil
	}
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("cannot scan into %T", dest)
	}
	return assignValue(rv.Elem(), src)
}

func text(s any) string {
	switch s := s.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return fmt.Sprint(s)
}

func bytesOf(src any) ([]byte, error) {
	switch s := src.(type) {
	case nil:
		return nil, nil
	case []byte:
		return s, nil
	case string:
		return []byte(s), nil
	}
	return nil, fmt.Errorf("cannot scan a %T into bytes", src)
}

var errNull = errors.New("cannot scan NULL into a value that is not a pointer, slice or map")

func assignValue(v reflect.Value, src any) error {
	if src == nil {
		switch v.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			v.SetZero()
			return nil
		}
		return errNull
	}
	if v.CanAddr() {
		if _, special := v.Addr().Interface().(sql.Scanner); special {
			return assign(v.Addr().Interface(), src)
		}
		switch v.Addr().Interface().(type) {
		case *time.Time, *pgtype.DriverBytes:
			return assign(v.Addr().Interface(), src)
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := assignValue(p.Elem(), src); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := intOf(src)
		if err == nil && v.OverflowInt(n) {
			err = fmt.Errorf("%d overflows %s", n, v.Type())
		}
		if err == nil {
			v.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		var err error
		if n, ok := src.(int64); ok {
			if n < 0 {
				return fmt.Errorf("%d is negative", n)
			}
			u = uint64(n)
		} else {
			u, err = strconv.ParseUint(text(src), 10, 64)
		}
		if err == nil && v.OverflowUint(u) {
			err = fmt.Errorf("%d overflows %s", u, v.Type())
		}
		if err == nil {
			v.SetUint(u)
		}
		return err
	case reflect.Float32, reflect.Float64:
		switch s := src.(type) {
		case float64:
			v.SetFloat(s)
		case int64:
			v.SetFloat(float64(s))
		default:
			f, err := strconv.ParseFloat(text(src), 64)
			if err != nil {
				return err
			}
			v.SetFloat(f)
		}
		return nil
	case reflect.Bool:
		switch s := src.(type) {
		case bool:
			v.SetBool(s)
		default:
			switch text(src) {
			case "t", "true":
				v.SetBool(true)
			case "f", "false":
				v.SetBool(false)
			default:
				return fmt.Errorf("%q is not a boolean", text(src))
			}
		}
		return nil
	case reflect.String:
		v.SetString(text(src))
		return nil
	case reflect.Array:
		if v.Len() == 16 && v.Type().Elem().Kind() == reflect.Uint8 {
			var id [16]byte
			var err error
			if b, ok := src.([]byte); ok && len(b) == 16 {
				copy(id[:], b)
			} else if id, err = parseUUID(text(src)); err != nil {
				return err
			}
			reflect.Copy(v, reflect.ValueOf(id[:]))
			return nil
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b, err := bytesOf(src)
			if err != nil {
				return err
			}
			v.SetBytes(append([]byte(nil), b...))
			return nil
		}
		elems, err := parseArray(text(src))
		if err != nil {
			return err
		}
		s := reflect.MakeSlice(v.Type(), len(elems), len(elems))
		for i, el := range elems {
			var src any
			if el != nil {
				src = *el
			}
			if err := assignValue(s.Index(i), src); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Interface:
		v.Set(reflect.ValueOf(src))
		return nil
	}
	return fmt.Errorf("cannot scan a %T into a %s", src, v.Type())
}

func intOf(src any) (int64, error) {
	switch s := src.(type) {
	case int64:
		return s, nil
	case float64:
		if s != math.Trunc(s) {
			return 0, fmt.Errorf("%v is not an integer", s)
		}
		return int64(s), nil
	}
	return strconv.ParseInt(text(src), 10, 64)
}

// parseArray parses a one-dimensional array in PostgreSQL's output syntax;
// a nil element is NULL.
func parseArray(s string) ([]*string, error) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("%q is not an array", s)
	}
	body := s[1 : len(s)-1]
	if body == "" {
		return []*string{}, nil
	}
	var (
		out []*string
		b   strings.Builder
	)
	for i := 0; i <= len(body); {
		b.Reset()
		quoted := i < len(body) && body[i] == '"'
		if quoted {
			i++
			for i < len(body) && body[i] != '"' {
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				b.WriteByte(body[i])
				i++
			}
			if i >= len(body) {
				return nil, fmt.Errorf("%q is not an array: an unterminated quote", s)
			}
			i++ // the closing quote
		} else {
			for i < len(body) && body[i] != ',' {
				if body[i] == '{' {
					return nil, fmt.Errorf("%q: arrays of more than one dimension are not supported", s)
				}
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				b.WriteByte(body[i])
				i++
			}
		}
		el := b.String()
		if !quoted && strings.EqualFold(el, "NULL") {
			out = append(out, nil)
		} else {
			out = append(out, &el)
		}
		if i < len(body) && body[i] != ',' {
			return nil, fmt.Errorf("%q is not an array", s)
		}
		i++ // the comma, or past the end
	}
	return out, nil
}

// errRows is the rows of a query that failed, as pgx returns them: never
// nil, so that a callback can defer their Close.
type errRows struct{ err error }

func (r errRows) Close()                                       {}
func (r errRows) Err() error                                   { return r.err }
func (r errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r errRows) Next() bool                                   { return false }
func (r errRows) Scan(...any) error                            { return r.err }
func (r errRows) Values() ([]any, error)                       { return nil, r.err }
func (r errRows) RawValues() [][]byte                          { return nil }
func (r errRows) Conn() *pgx.Conn                              { return nil }
func (r errRows) TypeMap() *pgtype.Map                         { return pgtype.NewMap() }

// TypeMap is pgx's default map: nothing is decoded through it here.
func (r *rows) TypeMap() *pgtype.Map { return pgtype.NewMap() }
