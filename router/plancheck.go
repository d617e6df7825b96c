package router

import (
	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// checkSources finds, without I/O, what would stop the decoded sources of p
// from starting together: two sources served on one ingress path, and a
// source's maxBodySize above config.MaxBodySizeLimit.
func checkSources(p *Plan, errs *config.Errors) {
	paths := map[string]string{}
	for _, sp := range p.Sources {
		pl := sp.Plugin
		where := pl.Where("source")
		if hc, ok := sp.Config.(sources.HTTPConfig); ok {
			if path := hc.HTTPPath(); path != "" {
				if other, dup := paths[path]; dup {
					errs.Addf(config.PosOf(config.Locate(pl.Own, "path")), where,
						"path: %s is already the path of source %q; each source on the HTTP ingress needs a path of its own", path, other)
				} else {
					paths[path] = pl.Name
				}
			}
		}
		checkIngressKeys(sp, errs)
		// maxBodySize is the key of every source type that has a body
		// limit; its value was decoded (and found valid) already.
		if n := config.Locate(pl.Own, "maxBodySize"); n != pl.Own {
			if size, err := config.ParseByteSize(n.Value); err == nil {
				if err := config.CheckMaxBodySize(config.ByteSize(size)); err != nil {
					errs.Addf(config.PosOf(n), where, "maxBodySize: %v", err)
				}
			}
		}
	}
}

// checkIngressKeys refuses auth and rateLimit on a source that is not
// served on the HTTP ingress: the router applies them there (see guard).
func checkIngressKeys(sp SourcePlan, errs *config.Errors) {
	if hc, ok := sp.Config.(sources.HTTPConfig); ok && hc.HTTPPath() != "" {
		return
	}
	for _, key := range []string{"auth", "rateLimit"} {
		if n := config.Locate(sp.Plugin.Node, key); n != sp.Plugin.Node {
			errs.Addf(config.PosOf(n), sp.Plugin.Where("source"),
				"%s: applies to sources served on the HTTP ingress (with a path), and this %s source has none", key, sp.Plugin.Type)
		}
	}
}
