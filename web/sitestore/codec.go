package sitestore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/greenloop/greenloop/internal/config"
)

// MaxDoc bounds the bytes of one site as ParseSite reads it (the CLI's
// file, the admin API's body); a list (ParseSites) may hold MaxImport.
const (
	MaxDoc    = 256 << 10
	MaxImport = 1000
)

// ParseSite decodes one site from YAML or JSON (JSON is YAML): the shape of
// an entry of the configuration's sites, with its YAML field names. Unknown
// and repeated fields are refused, as is more than one document. It does
// not validate the site (config.Site.Validate does).
func ParseSite(data []byte) (config.Site, error) {
	var s config.Site
	if err := decodeOne(data, &s); err != nil {
		return config.Site{}, fmt.Errorf("site: %w", err)
	}
	return s, nil
}

// ParseSites decodes a list of sites (YAML or JSON), each as ParseSite does.
func ParseSites(data []byte) ([]config.Site, error) {
	var ss []config.Site
	if err := decodeOne(data, &ss); err != nil {
		return nil, fmt.Errorf("site list: %w", err)
	}
	if len(ss) > MaxImport {
		return nil, fmt.Errorf("site list: %d sites, at most %d at once", len(ss), MaxImport)
	}
	return ss, nil
}

func decodeOne(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty document")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("more than one document")
	}
	return nil
}

// EncodeSite is the site as JSON with its YAML field names, which ParseSite
// reads back to the same site: what the table stores and the admin API
// answers. Every field is present (null, 0, "" where unset). A NaN or
// infinite number (which Validate refuses) is an error.
//
// It walks the yaml tags itself rather than going through yaml.Marshal,
// which writes some float64 values with too few digits to read back.
func EncodeSite(s config.Site) ([]byte, error) {
	out, err := json.Marshal(toDoc(reflect.ValueOf(s)))
	if err != nil {
		return nil, fmt.Errorf("encode site %q: %w", s.ID, err)
	}
	return out, nil
}

var timeType = reflect.TypeFor[time.Time]()

// toDoc turns v into maps, slices and leaves for encoding/json, struct
// fields named by their yaml tags.
func toDoc(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toDoc(v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			return v.Interface()
		}
		m := make(map[string]any, v.NumField())
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			m[name] = toDoc(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		l := make([]any, v.Len())
		for i := range l {
			l[i] = toDoc(v.Index(i))
		}
		return l
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[fmt.Sprint(it.Key().Interface())] = toDoc(it.Value())
		}
		return m
	default:
		return v.Interface()
	}
}
