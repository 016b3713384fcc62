// Package limited reads small files (keys, enrolments, configuration) with
// a size bound, so that a wrong path (a device, a huge log) fails clearly
// instead of filling memory.
package limited

import (
	"fmt"
	"io"
	"os"
)

// ReadFile reads at most limit bytes of path, and fails on a larger file.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
