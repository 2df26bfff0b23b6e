package frame

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkStrict walks a control payload against the type it decodes into
// and refuses what encoding/json would read loosely, so that every
// implementation reads a frame the same way: a key given twice in one
// object, and a key that differs from a field's name only in case (which
// encoding/json would take for that field). Unknown keys stay allowed.
func checkStrict(p []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	return walkValue(dec, t, 0)
}

// maxDepth bounds the nesting walked; deeper payloads are refused.
const maxDepth = 32

func walkValue(dec *json.Decoder, t reflect.Type, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, depth)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkValue(dec, elem, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, depth int) error {
	fields := fieldNames(t)
	var elem reflect.Type
	if t != nil && t.Kind() == reflect.Map {
		elem = t.Elem()
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("%w: key %q appears twice", ErrMalformed, key)
		}
		seen[key] = true
		next := elem
		if fields != nil {
			ft, exact := fields[key]
			if !exact {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return fmt.Errorf("%w: key %q: names are case-sensitive (did you mean %q?)", ErrMalformed, key, name)
					}
				}
			}
			next = ft
		}
		if err := walkValue(dec, next, depth+1); err != nil {
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// fieldNames maps the JSON names of a struct's fields to their types;
// nil for anything but a struct.
func fieldNames(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	m := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			for k, v := range fieldNames(deref(f.Type)) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
