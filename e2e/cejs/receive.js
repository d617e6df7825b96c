// receive.js: an HTTP server on 127.0.0.1 (a free port, printed first as
// {"port": N}) that reads every request with the official CloudEvents
// JavaScript SDK (HTTP.toEvent) and prints one JSON line per request:
// {"ok": true, "path", "contentType", "event"} or {"ok": false, "path",
// "error"}. It answers 202, or 400 when the SDK refuses the request.
"use strict";
const http = require("http");
const { HTTP } = require("cloudevents");

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    try {
      const got = HTTP.toEvent({ headers: req.headers, body });
      const events = Array.isArray(got) ? got : [got];
      for (const ce of events) {
        console.log(JSON.stringify({ ok: true, path: req.url, contentType: req.headers["content-type"] || "", event: ce.toJSON() }));
      }
      res.writeHead(202);
    } catch (err) {
      console.log(JSON.stringify({ ok: false, path: req.url, error: String(err && err.message || err) }));
      res.writeHead(400);
    }
    res.end();
  });
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
