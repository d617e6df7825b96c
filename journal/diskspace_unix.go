//go:build linux || darwin || freebsd

package journal

import "syscall"

// diskSpace returns the free space (for unprivileged users) and the size of
// the filesystem that holds dir.
func diskSpace(dir string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
