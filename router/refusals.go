package router

import (
	"context"
	"log/slog"
	"time"

	"github.com/junctionhq/junction/sources"
)

var _ sources.RefusalLogger = door{}

// LogRefusal implements sources.RefusalLogger: a refused ingress request
// is logged at debug level with its source, reason label, status, path and
// the reason answered (detail), at most once per logEvery for each source
// and reason; count is how many refusals the line stands for (this one and
// those not logged since). The
// refusals of the guard (auth.go: credentials, rate limit, header size) are
// logged there, not here.
func (d door) LogRefusal(status int, label, detail string) {
	log := d.r.log
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l, ok := d.r.refusals.Load(refusalKey{d.source, label})
	if !ok {
		l, _ = d.r.refusals.LoadOrStore(refusalKey{d.source, label}, new(logLimiter))
	}
	if ok, n := l.(*logLimiter).allow(time.Now()); ok {
		log.Debug("ingress request refused", "source", d.source, "reason", label, "status", status, "path", d.path, "detail", detail, "count", n)
	}
}

// refusalKey keys Router.refusals: labels are constants and sources are
// those of the config, so the map stays small.
type refusalKey struct{ source, label string }
