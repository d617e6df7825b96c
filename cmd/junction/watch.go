package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the config file must stay quiet after a change
// before it is reloaded: editors write in several steps.
const watchDebounce = 300 * time.Millisecond

// watchConfig calls reload each time the content of the file at path
// changes, until ctx ends. It watches the file's directory, not the file, so
// that a file replaced by a rename (what editors and Kubernetes ConfigMaps
// do) is still followed; any event there is followed, after watchDebounce
// of quiet, by a read of the file, and a reload only when its bytes
// changed.
func watchConfig(ctx context.Context, path string, log *slog.Logger, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	last, _ := os.ReadFile(path)
	go func() {
		defer w.Close()
		quiet := time.NewTimer(time.Hour)
		quiet.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				quiet.Reset(watchDebounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the config file", "dir", dir, "err", err)
			case <-quiet.C:
				now, err := os.ReadFile(path)
				if err != nil {
					// Gone for a moment (a rename in progress), or for good:
					// the next event says.
					log.Debug("config file unreadable; waiting for the next change", "file", path, "err", err)
					continue
				}
				if bytes.Equal(now, last) {
					continue
				}
				last = now
				log.Info("config file changed; reloading", "file", path)
				reload()
			}
		}
	}()
	return nil
}
