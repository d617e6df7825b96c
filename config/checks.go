package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
)

// MaxBodySizeLimit is the largest body limit a config may set
// (http.maxBodySize, a source's maxBodySize): half of the largest journal
// entry (journal.MaxPayload, 8MiB), which leaves room for the event's
// attributes and for what transforms add.
const MaxBodySizeLimit = ByteSize(4 << 20)

// CheckMaxBodySize returns an error when size is above MaxBodySizeLimit.
func CheckMaxBodySize(size ByteSize) error {
	if size <= MaxBodySizeLimit {
		return nil
	}
	return fmt.Errorf("%v is above the limit of %v (an event must fit in one journal entry, with its attributes and what transforms add)", size, MaxBodySizeLimit)
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$`)

// checkListen says what is wrong with a listen address, "" when nothing:
// it must be host:port (host may be empty for every interface) with a
// numeric port from 0 (a free port) to 65535. example is a good address.
func checkListen(addr, example string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		_, eport, _ := net.SplitHostPort(example)
		return fmt.Sprintf("%q is not a host:port address such as %s (or :%s for every interface)", addr, example, eport)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q: the port must be a number from 0 to 65535, not %q", addr, port)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostnameRE.MatchString(host) {
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return ""
}

// sameListen reports whether listeners on a and b (valid, see checkListen)
// would take the same port: the same non-zero port and the same host, or a
// wildcard host that covers the other.
func sameListen(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	return ha == hb || covers(ha, hb) || covers(hb, ha)
}

// covers reports whether a listener on wildcard host w takes the port on
// host h too.
func covers(w, h string) bool {
	switch w {
	case "", "::":
		return true
	case "0.0.0.0":
		ip, err := netip.ParseAddr(h)
		return err != nil || ip.Is4() || ip.Is4In6()
	}
	return false
}
