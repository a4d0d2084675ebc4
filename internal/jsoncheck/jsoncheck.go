// Package jsoncheck validates JSON against the rules of every database
// meowmx stores it in: well-formed JSON (RFC 8259), valid UTF-8, and only
// what PostgreSQL's jsonb can hold. A document it accepts is stored the same
// way by every driver, so that an application can move from SQLite to
// PostgreSQL without a failed migration.
package jsoncheck

import (
	"fmt"
	"unicode/utf8"
)

const (
	// MaxDepth is how deeply arrays and objects may nest. PostgreSQL
	// parses JSON recursively and stops at its max_stack_depth (about
	// 10,000 levels with the default 2 MB; fewer on some servers).
	MaxDepth = 1000
	// maxIntDigits and maxScale are the limits of PostgreSQL's numeric,
	// which jsonb stores numbers as: 131,072 digits before the decimal
	// point and 16,383 after.
	maxIntDigits = 131072
	maxScale     = 16383
	// maxExponent is the largest exponent numeric's parser takes whatever
	// the digits (INT_MAX/2 - 1): a zero with any exponent up to it is zero.
	maxExponent = 1<<30 - 2
)

// Error says what is wrong with a document and where.
type Error struct {
	Offset int // byte offset of the problem
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// Check returns nil if data is one JSON value that every meowmx driver
// stores, or an *Error saying why not.
func Check(data []byte) error {
	c := checker{data: data}
	c.space()
	if c.pos >= len(data) {
		return c.fail("no JSON value")
	}
	if err := c.value(); err != nil {
		return err
	}
	c.space()
	if c.pos < len(data) {
		return c.fail("unexpected data after the JSON value")
	}
	return nil
}

type checker struct {
	data  []byte
	pos   int
	depth int
}

func (c *checker) fail(msg string) error {
	return &Error{Offset: c.pos, Msg: msg}
}

func (c *checker) space() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value checks one value; it recurses into arrays and objects up to
// MaxDepth levels.
func (c *checker) value() error {
	if c.pos >= len(c.data) {
		return c.fail("unexpected end of JSON")
	}
	switch b := c.data[c.pos]; {
	case b == '"':
		return c.string()
	case b == '{':
		return c.container('}')
	case b == '[':
		return c.container(']')
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return c.fail("invalid character " + quoteByte(c.data[c.pos]) + " looking for a JSON value")
}

func (c *checker) literal(word string) error {
	if len(c.data)-c.pos < len(word) || string(c.data[c.pos:c.pos+len(word)]) != word {
		return c.fail("invalid literal, want " + word)
	}
	c.pos += len(word)
	return nil
}

// container checks an object (close '}') or an array (close ']').
func (c *checker) container(close byte) error {
	c.depth++
	if c.depth > MaxDepth {
		return c.fail(fmt.Sprintf("JSON nested deeper than %d levels", MaxDepth))
	}
	c.pos++ // the opening bracket
	c.space()
	if c.pos < len(c.data) && c.data[c.pos] == close {
		c.pos++
		c.depth--
		return nil
	}
	for {
		if close == '}' {
			if c.pos >= len(c.data) || c.data[c.pos] != '"' {
				return c.fail("want a string key in an object")
			}
			if err := c.string(); err != nil {
				return err
			}
			c.space()
			if c.pos >= len(c.data) || c.data[c.pos] != ':' {
				return c.fail("want ':' after an object key")
			}
			c.pos++
			c.space()
		}
		if err := c.value(); err != nil {
			return err
		}
		c.space()
		if c.pos >= len(c.data) {
			return c.fail("unexpected end of JSON")
		}
		switch c.data[c.pos] {
		case ',':
			c.pos++
			c.space()
		case close:
			c.pos++
			c.depth--
			return nil
		default:
			return c.fail("invalid character " + quoteByte(c.data[c.pos]) + " after a value, want ',' or '" + string(close) + "'")
		}
	}
}

// string checks a string: no control characters, valid escapes, valid
// UTF-8, and neither \u0000 nor an unpaired surrogate escape, which jsonb
// refuses.
func (c *checker) string() error {
	c.pos++ // the opening quote
	for c.pos < len(c.data) {
		b := c.data[c.pos]
		switch {
		case b == '"':
			c.pos++
			return nil
		case b == '\\':
			if err := c.escape(); err != nil {
				return err
			}
		case b < 0x20:
			return c.fail("control character in a string (escape it)")
		case b < utf8.RuneSelf:
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.data[c.pos:])
			if r == utf8.RuneError && size == 1 {
				return c.fail("invalid UTF-8 in a string")
			}
			c.pos += size
		}
	}
	return c.fail("unterminated string")
}

func (c *checker) escape() error {
	if c.pos+1 >= len(c.data) {
		return c.fail("unterminated escape")
	}
	switch c.data[c.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		c.pos += 2
		return nil
	case 'u':
	default:
		return c.fail("invalid escape " + quoteByte(c.data[c.pos+1]))
	}
	r, ok := c.hex4(c.pos + 2)
	if !ok {
		return c.fail(`invalid \u escape: want four hex digits`)
	}
	switch {
	case r == 0:
		return c.fail(`\u0000 in a string (PostgreSQL's jsonb cannot store it)`)
	case r >= 0xDC00 && r <= 0xDFFF:
		return c.fail(`unpaired low surrogate \u escape`)
	case r >= 0xD800 && r <= 0xDBFF:
		low, ok := rune(0), false
		if c.pos+7 < len(c.data) && c.data[c.pos+6] == '\\' && c.data[c.pos+7] == 'u' {
			low, ok = c.hex4(c.pos + 8)
		}
		if !ok || low < 0xDC00 || low > 0xDFFF {
			return c.fail(`high surrogate \u escape not followed by a low surrogate`)
		}
		c.pos += 12
		return nil
	}
	c.pos += 6
	return nil
}

func (c *checker) hex4(at int) (rune, bool) {
	if at+4 > len(c.data) {
		return 0, false
	}
	var r rune
	for _, b := range c.data[at : at+4] {
		switch {
		case b >= '0' && b <= '9':
			r = r<<4 | rune(b-'0')
		case b >= 'a' && b <= 'f':
			r = r<<4 | rune(b-'a'+10)
		case b >= 'A' && b <= 'F':
			r = r<<4 | rune(b-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number checks a number's syntax and that PostgreSQL's numeric holds it.
func (c *checker) number() error {
	start := c.pos
	if c.data[c.pos] == '-' {
		c.pos++
	}
	intStart := c.pos
	switch {
	case c.pos < len(c.data) && c.data[c.pos] == '0':
		c.pos++
	case c.pos < len(c.data) && c.data[c.pos] >= '1' && c.data[c.pos] <= '9':
		c.digits()
	default:
		return c.fail("invalid number")
	}
	intPart := c.data[intStart:c.pos]
	var frac []byte
	if c.pos < len(c.data) && c.data[c.pos] == '.' {
		c.pos++
		fracStart := c.pos
		if c.digits() == 0 {
			return c.fail("invalid number: want digits after '.'")
		}
		frac = c.data[fracStart:c.pos]
	}
	exp := 0
	if c.pos < len(c.data) && (c.data[c.pos] == 'e' || c.data[c.pos] == 'E') {
		c.pos++
		negative := false
		if c.pos < len(c.data) && (c.data[c.pos] == '+' || c.data[c.pos] == '-') {
			negative = c.data[c.pos] == '-'
			c.pos++
		}
		expStart := c.pos
		if c.digits() == 0 {
			return c.fail("invalid number: want digits in the exponent")
		}
		for _, b := range c.data[expStart:c.pos] {
			if exp <= maxExponent {
				exp = exp*10 + int(b-'0')
			}
		}
		if exp > maxExponent {
			return &Error{Offset: start, Msg: "number out of range (exponent too large)"}
		}
		if negative {
			exp = -exp
		}
	}
	// The digits before the point, and the scale (digits after it), of the
	// value as PostgreSQL's numeric writes it.
	lead := 0
	for lead < len(intPart) && intPart[lead] == '0' {
		lead++
	}
	significant := len(intPart) - lead + len(frac)
	if lead == len(intPart) {
		for _, b := range frac {
			if b != '0' {
				break
			}
			significant--
		}
	}
	if significant > 0 && significant-len(frac)+exp > maxIntDigits {
		return &Error{Offset: start, Msg: fmt.Sprintf("number out of range (over %d digits before the decimal point)", maxIntDigits)}
	}
	if scale := len(frac) - exp; scale > maxScale {
		return &Error{Offset: start, Msg: fmt.Sprintf("number out of range (over %d digits after the decimal point)", maxScale)}
	}
	return nil
}

func (c *checker) digits() int {
	start := c.pos
	for c.pos < len(c.data) && c.data[c.pos] >= '0' && c.data[c.pos] <= '9' {
		c.pos++
	}
	return c.pos - start
}

func quoteByte(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return "'" + string(b) + "'"
	}
	return fmt.Sprintf("0x%02x", b)
}
