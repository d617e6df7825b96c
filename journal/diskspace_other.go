//go:build !(linux || darwin || freebsd)

package journal

import "errors"

// diskSpace is not implemented here: journal.minFreeSpace is not enforced.
func diskSpace(string) (free, size int64, err error) {
	return 0, 0, errors.ErrUnsupported
}
