package lines

import (
	"fmt"
	"slices"
	"testing"
)

func TestEach(t *testing.T) {
	for in, want := range map[string][]string{
		"":             nil,
		"a":            {"1:a"},
		"a\n":          {"1:a"},
		"a\n\nb\r\n c": {"1:a", "2:", "3:b\r", "4: c"},
	} {
		var got []string
		Each([]byte(in), func(n int, l []byte) { got = append(got, fmt.Sprintf("%d:%s", n, l)) })
		if !slices.Equal(got, want) {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}
