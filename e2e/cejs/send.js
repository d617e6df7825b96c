// send.js URL: sends CloudEvents made by the official CloudEvents
// JavaScript SDK to URL (Junction's http source), in binary and structured
// modes, and prints one JSON line per request: {"id", "mode", "status"}.
"use strict";
const { CloudEvent, HTTP } = require("cloudevents");

const url = process.argv[2];

const events = [
  // Binary: a subject and an extension that need percent-encoding, JSON data.
  [HTTP.binary, "binary", new CloudEvent({
    id: "js-binary", source: "/js", type: "com.example.js", subject: "Euro \"q\" 100% off",
    datacontenttype: "application/json", data: { a: [1, 2] }, tenant: "acme corp",
  })],
  // Structured: application/*+json data is a JSON value (JSON format 3.1.1).
  [HTTP.structured, "structured", new CloudEvent({
    id: "js-structured", source: "/js", type: "com.example.js",
    datacontenttype: "application/vnd.api+json", data: { b: true }, count: 7,
  })],
  // Binary text data.
  [HTTP.binary, "binary", new CloudEvent({
    id: "js-text", source: "/js", type: "com.example.js",
    datacontenttype: "text/plain", data: "hello ✓",
  })],
];

(async () => {
  for (const [bind, mode, ce] of events) {
    const msg = bind(ce);
    const res = await fetch(url, { method: "POST", headers: msg.headers, body: msg.body });
    await res.text();
    console.log(JSON.stringify({ id: ce.id, mode, status: res.status }));
  }
})().catch((err) => { console.error(err); process.exit(1); });
