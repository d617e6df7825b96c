package sourcetest

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cejson"
)

// FuzzEvent is the CloudEvents 1.0 event of these attributes (source "/s")
// for a decoder's round-trip fuzz target, when it is one that a producer
// may send: Unicode strings, an id and type that are not blank, and, when
// extName is set, a lower-case extension name that is no context
// attribute, and that the core rules of cejson.Check accept.
func FuzzEvent(id, typ, subject, extName, extValue string) (*event.Event, bool) {
	for _, s := range []string{id, typ, subject, extName, extValue} {
		if !utf8.ValidString(s) {
			return nil, false
		}
	}
	if strings.TrimSpace(id) == "" || strings.TrimSpace(typ) == "" {
		return nil, false
	}
	e := event.New()
	e.SetID(id)
	e.SetSource("/s")
	e.SetType(typ)
	if subject != "" {
		e.SetSubject(subject)
		if e.Subject() != subject {
			return nil, false // sdk-go trims it; a blank one is refused on the wire
		}
	}
	if extName != "" {
		if extName != strings.ToLower(extName) || slices.Contains(contextAttributes, extName) || e.Context.SetExtension(extName, extValue) != nil {
			return nil, false
		}
	}
	// The core rules sdk-go does not keep (cejson.Check: a blank subject,
	// control characters) make an event every reader refuses.
	return &e, e.Validate() == nil && cejson.Check(&e) == nil
}

// contextAttributes are the attribute names of CloudEvents 1.0 and 0.3,
// which are not extensions.
var contextAttributes = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "schemaurl", "datacontentencoding", "data", "data_base64"}

// DiffEvent says how got differs from want (attributes, extensions and
// time) and from data, or returns "".
func DiffEvent(got, want *event.Event, data []byte) string {
	switch {
	case got.ID() != want.ID(), got.Source() != want.Source(), got.Type() != want.Type(), got.Subject() != want.Subject(),
		len(got.Extensions()) != len(want.Extensions()):
		return "got " + got.String() + "\nwant " + want.String()
	case !got.Time().Equal(want.Time()):
		return "time " + got.Time().String() + ", want " + want.Time().String()
	case !bytes.Equal(got.Data(), data):
		return "data differs"
	}
	for k, v := range want.Extensions() {
		if got.Extensions()[k] != v {
			return "extension " + k + " differs: got " + got.String() + "\nwant " + want.String()
		}
	}
	return ""
}
