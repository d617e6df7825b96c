// Junction console: plain JavaScript, no dependencies. Every value that
// comes from an event or the API is put in the page as text (textContent),
// never as HTML.
"use strict";

const state = {
  token: sessionStorage.getItem("junction-token") || "",
  timer: null,      // the current page's refresh timer
  tail: null,       // the live tail's AbortController
  rates: null,      // the previous metrics sample, for rates
};

// ---- DOM helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");

function notice(msg, isError) {
  const n = document.getElementById("notice");
  n.textContent = msg || "";
  n.className = isError ? "error" : "";
}

function badge(text, kind) { return h("span", { class: "badge " + kind }, text); }

// table builds a table that turns into cards on a narrow screen.
function table(caption, headers, rows) {
  return h("table", { class: "cards" },
    caption ? h("caption", { class: "muted", style: null }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

function cells(headers, values) {
  return values.map((v, i) => h("td", { "data-label": headers[i] }, v));
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

function fmtRate(x) {
  if (x === undefined || x === null) return "–";
  return x >= 10 ? x.toFixed(0) + "/s" : x.toFixed(1) + "/s";
}

function pretty(v) {
  try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
}

// ---- API ---------------------------------------------------------------

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401) throw new Unauthorized("a valid admin token is needed");
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) || text.split("\n")[0] || resp.statusText;
    const err = new Error(resp.status + ": " + msg);
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

// metrics reads the Prometheus text of /metrics into {name: [{labels, value}]}.
async function metrics() {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch("/metrics", { headers });
  if (!resp.ok) return {};
  const out = {};
  for (const line of (await resp.text()).split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

function sumBy(samples, label, where) {
  const out = {};
  for (const s of samples || []) {
    if (where && !where(s.labels)) continue;
    const k = s.labels[label];
    out[k] = (out[k] || 0) + s.value;
  }
  return out;
}

// failures reports an error of a page's load: sign-in on 401, else a notice.
function failed(err) {
  if (err instanceof Unauthorized) { signIn(state.token ? "That token was refused." : ""); return; }
  notice(err.message, true);
}

// ---- sign-in -------------------------------------------------------------

// session asks whether the admin API needs a token and whether token works,
// without a 401 (which the browser would log as an error).
async function session(token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch("/console/session", { headers });
  if (!resp.ok) throw new Error(resp.status + ": " + resp.statusText);
  return resp.json();
}

function signIn(problem) {
  stopPage();
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  notice("");
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "signin", onsubmit: async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    try {
      const s = await session(token);
      if (!s.signedIn) { signIn("That token was refused."); return; }
      state.token = token;
      sessionStorage.setItem("junction-token", token);
      start();
    } catch (err) {
      signIn(err.message);
    }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "This Junction protects its admin API. Enter an admin token (admin.auth.bearer in its config)."),
  h("label", { for: "token" }, "Admin token"), input,
  problem ? h("p", { role: "alert", class: "badge bad" }, problem) : null,
  h("p", {}, h("button", { type: "submit" }, "Sign in")));
  main().replaceChildren(form);
  input.focus();
}

// ---- pages ---------------------------------------------------------------

const pages = { overview, deadletters, trace, tail, sandbox };

function stopPage() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
  if (state.tail) { state.tail.abort(); state.tail = null; }
}

async function overview(root) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  root.append(h("h1", {}, "Overview"), body);
  state.rates = null;
  const refresh = async () => {
    try {
      const [st, m] = await Promise.all([api("GET", "/api/v1/status"), metrics()]);
      body.replaceChildren(...renderOverview(st, m));
      notice("");
    } catch (err) { failed(err); }
  };
  await refresh();
  state.timer = setInterval(refresh, 2000);
}

function renderOverview(st, m) {
  const now = Date.now() / 1000;
  const sample = {
    at: now,
    received: sumBy(m.junction_events_received_total, "source"),
    delivered: sumBy(m.junction_deliveries_total, "sink", (l) => l.outcome === "delivered"),
    failed: sumBy(m.junction_deliveries_total, "sink", (l) => l.outcome !== "delivered"),
  };
  const prev = state.rates;
  state.rates = sample;
  const rate = (kind, key) => {
    if (!prev || now <= prev.at) return null;
    return Math.max(0, ((sample[kind][key] || 0) - (prev[kind][key] || 0)) / (now - prev.at));
  };
  const out = [];
  const srcH = ["Source", "Type", "State", "Events"];
  out.push(h("h2", {}, "Sources"), table(null, srcH, (st.sources || []).map((s) => h("tr", {}, cells(srcH, [
    s.name, s.type || "",
    s.ready === false ? badge("not ready", "bad") : badge("ready", "ok"),
    fmtRate(rate("received", s.name)),
  ])))));
  const routeH = ["Route", "From", "To"];
  out.push(h("h2", {}, "Routes"), table(null, routeH, (st.routes || []).map((r) => h("tr", {}, cells(routeH, [
    r.name, (r.sources && r.sources.length ? r.sources.join(", ") : "every source"), (r.to || []).join(", "),
  ])))));
  const sinkH = ["Sink", "Type", "State", "Delivered", "Failed", "Pending", "Circuit", "Rate limit", "Last error"];
  out.push(h("h2", {}, "Sinks"), table(null, sinkH, (st.sinks || []).map((s) => {
    const failedRate = rate("failed", s.name);
    const open = s.circuit && s.circuit !== "closed";
    const recent = s.lastErrorAt && (Date.now() - new Date(s.lastErrorAt)) < 60000;
    const failing = open || (failedRate !== null && failedRate > 0) || recent;
    const st = open ? badge("circuit " + s.circuit, "bad") : failing ? badge("failing", "bad") : badge("healthy", "ok");
    return h("tr", { class: failing ? "failing" : "", "data-sink": s.name }, cells(sinkH, [
      s.name, s.type || "", st,
      fmtRate(rate("delivered", s.name)), fmtRate(failedRate),
      String(s.pending ?? 0), s.circuit || "closed", s.rateLimit || "none",
      s.lastError ? (s.lastError + (s.lastErrorAt ? " (" + fmtTime(s.lastErrorAt) + ")" : "")) : "",
    ]));
  })));
  return out;
}

async function deadletters(root, params) {
  const route = h("input", { id: "dl-route", name: "route", value: params.get("route") || "" });
  const sink = h("input", { id: "dl-sink", name: "sink", value: params.get("sink") || "" });
  const list = h("div", {});
  const detail = h("section", { "aria-label": "Dead letter", id: "dl-detail" });
  let cursor = "";
  let shown = [];
  const selected = new Set();
  const redriveSel = h("button", { type: "button", disabled: true, onclick: async () => {
    await redrive({ ids: [...selected] });
  } }, "Redrive selected");
  const redriveAll = h("button", { type: "button", class: "secondary", onclick: async () => {
    const what = { route: route.value.trim() || undefined, sink: sink.value.trim() || undefined };
    const scope = [what.route && "route " + what.route, what.sink && "sink " + what.sink].filter(Boolean).join(", ") || "every route and sink";
    if (!confirm("Redrive every dead letter of " + scope + "?")) return;
    await redrive(what);
  } }, "Redrive all matching");
  const more = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => load(true) }, "Older");

  async function redrive(body) {
    try {
      const res = await api("POST", "/api/v1/deadletters/redrive", body);
      notice("Redriven: " + res.redriven);
      selected.clear();
      await load(false);
    } catch (err) { failed(err); }
  }

  async function load(append) {
    const q = new URLSearchParams();
    if (route.value.trim()) q.set("route", route.value.trim());
    if (sink.value.trim()) q.set("sink", sink.value.trim());
    q.set("limit", "50");
    if (append && cursor) q.set("after", cursor);
    try {
      const res = await api("GET", "/api/v1/deadletters?" + q);
      const items = res.deadLetters || [];
      shown = append ? shown.concat(items) : items;
      if (!append) selected.clear();
      cursor = res.next || "";
      more.hidden = !cursor;
      render();
    } catch (err) { failed(err); }
  }

  function render() {
    redriveSel.disabled = selected.size === 0;
    if (!shown.length) { list.replaceChildren(h("p", { class: "muted" }, "No dead letters.")); return; }
    const hd = ["", "Time", "Route", "Sink", "Attempts", "Error", "Event", ""];
    list.replaceChildren(table(null, hd, shown.map((d) => {
      const ev = d.event || {};
      const box = h("input", { type: "checkbox", "aria-label": "Select dead letter " + d.id, checked: selected.has(d.id), onchange: (e) => {
        if (e.target.checked) selected.add(d.id); else selected.delete(d.id);
        redriveSel.disabled = selected.size === 0;
      } });
      return h("tr", { "data-id": d.id }, cells(hd, [
        box, fmtTime(d.time), d.route, d.sink, String(d.attempts), d.error || d.reason || "",
        (ev.type || "") + " " + (ev.id ? "(" + ev.id + ")" : ""),
        h("button", { type: "button", class: "secondary", onclick: () => inspect(d) }, "Inspect"),
      ]));
    })));
  }

  async function inspect(d) {
    const ev = d.event || {};
    const attrs = {};
    let data;
    for (const [k, v] of Object.entries(ev)) {
      if (k === "data" || k === "data_base64") data = v; else attrs[k] = v;
    }
    const attempts = h("div", {}, h("p", { class: "muted" }, "Loading the attempts…"));
    detail.replaceChildren(h("div", { class: "card" },
      h("h2", { tabindex: "-1", id: "dl-detail-title" }, "Dead letter " + d.id),
      h("p", {}, "Route ", h("strong", {}, d.route), ", sink ", h("strong", {}, d.sink), ", ", String(d.attempts), " attempt(s), ", d.reason || ""),
      h("h3", {}, "Error"), h("pre", {}, d.error || "(none)"),
      h("h3", {}, "Attributes"), h("pre", {}, pretty(attrs)),
      h("h3", {}, "Data"), h("pre", {}, data === undefined ? "(none)" : typeof data === "string" ? data : pretty(data)),
      h("h3", {}, "Attempts"), attempts,
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => redrive({ ids: [d.id] }) }, "Redrive this one"),
        h("button", { type: "button", class: "secondary", onclick: () => { detail.replaceChildren(); } }, "Close"))));
    document.getElementById("dl-detail-title").focus();
    if (!ev.id) { attempts.replaceChildren(h("p", { class: "muted" }, "Unknown event id.")); return; }
    try {
      const q = new URLSearchParams({ missing: "empty" });
      if (ev.source) q.set("source", ev.source);
      const tr = await api("GET", "/api/v1/events/" + encodeURIComponent(ev.id) + "?" + q);
      const one = tr.events ? tr.events[0] : tr;
      if (!one) { attempts.replaceChildren(h("p", { class: "muted" }, "The trace has expired.")); return; }
      const mine = (one.routes || []).filter((r) => r.route === d.route)
        .flatMap((r) => (r.deliveries || []).filter((x) => x.sink === d.sink));
      attempts.replaceChildren(...(mine.length ? mine.map(renderDelivery) : [h("p", { class: "muted" }, "No attempts recorded.")]));
    } catch (err) {
      attempts.replaceChildren(h("p", { class: "muted" }, err.status === 404 ? "The trace has expired." : err.message));
    }
  }

  root.append(h("h1", {}, "Dead letters"),
    h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); load(false); } },
      h("div", { class: "field" }, h("label", { for: "dl-route" }, "Route"), route),
      h("div", { class: "field" }, h("label", { for: "dl-sink" }, "Sink"), sink),
      h("div", { class: "field" }, h("button", { type: "submit" }, "Filter"))),
    h("div", { class: "row" }, redriveSel, redriveAll),
    list, more, detail);
  await load(false);
}

function renderDelivery(dv) {
  const kind = dv.state === "delivered" ? "ok" : dv.state === "pending" ? "warn" : "bad";
  const hd = ["#", "At", "Outcome", "Status", "Duration", "Error"];
  return h("div", { class: "card" },
    h("h3", {}, "Sink " + dv.sink + " ", badge(dv.state || "unknown", kind)),
    (dv.attempts && dv.attempts.length) ? table(null, hd, dv.attempts.map((a, i) => h("tr", {}, cells(hd, [
      String(a.attempt || i + 1), fmtTime(a.at), a.outcome || "", a.status ? String(a.status) : "",
      a.durationMs !== undefined ? a.durationMs + " ms" : "", a.error || "",
    ])))) : h("p", { class: "muted" }, "No attempt yet."));
}

async function trace(root, params) {
  const id = h("input", { id: "trace-id", name: "id", required: true, value: params.get("id") || "" });
  const source = h("input", { id: "trace-source", name: "source", value: params.get("source") || "" });
  const out = h("div", { "aria-live": "polite" });
  async function search() {
    const q = new URLSearchParams({ missing: "empty" });
    if (source.value.trim()) q.set("source", source.value.trim());
    out.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    try {
      const tr = await api("GET", "/api/v1/events/" + encodeURIComponent(id.value.trim()) + "?" + q);
      const found = tr.events || [tr];
      if (!found.length) {
        out.replaceChildren(h("p", { class: "badge bad", role: "alert" }, "No event with that id (or its trace has expired)."));
        return;
      }
      out.replaceChildren(...found.map(renderTrace));
    } catch (err) {
      if (err instanceof Unauthorized) return failed(err);
      out.replaceChildren(h("p", { class: "badge bad", role: "alert" }, err.status === 404 ? "No event with that id (or its trace has expired)." : err.message));
    }
  }
  root.append(h("h1", {}, "Trace"),
    h("form", { class: "inline", role: "search", onsubmit: (e) => { e.preventDefault(); search(); } },
      h("div", { class: "field" }, h("label", { for: "trace-id" }, "Event id"), id),
      h("div", { class: "field" }, h("label", { for: "trace-source" }, "CloudEvents source (optional)"), source),
      h("div", { class: "field" }, h("button", { type: "submit" }, "Search"))),
    out);
  if (id.value) await search(); else id.focus();
}

function renderTrace(t) {
  const routes = t.routes || [];
  return h("section", { class: "card", "aria-label": "Event " + t.id },
    h("h2", {}, "Event " + t.id),
    h("p", {}, "Type ", h("strong", {}, t.type || ""), ", source ", h("strong", {}, t.source || ""),
      ", accepted ", fmtTime(t.acceptedAt), t.sourceName ? " by " + t.sourceName : ""),
    routes.length ? routes.map((r) => h("div", {}, h("h3", {}, "Route " + r.route), (r.deliveries || []).map(renderDelivery)))
      : h("p", {}, badge("no route matched", "idle")));
}

async function tail(root, params) {
  const filter = h("input", { id: "tail-filter", name: "filter", value: params.get("filter") || "", placeholder: "type, source or id contains…" });
  const list = h("ol", { class: "tail", "aria-live": "off", id: "tail-list" });
  const count = h("span", { class: "muted", id: "tail-count" }, "0 events");
  let paused = false;
  let seen = 0;
  const keep = 200;
  const toggle = h("button", { type: "button", id: "tail-toggle", "aria-pressed": "false", onclick: () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    toggle.setAttribute("aria-pressed", String(paused));
    status.textContent = paused ? "Paused: new events are not shown." : "Live.";
  } }, "Pause");
  const status = h("p", { role: "status", id: "tail-status" }, "Connecting…");
  const matches = (item) => {
    const f = filter.value.trim().toLowerCase();
    if (!f) return true;
    const e = item.event || {};
    return [e.type, e.source, e.id, e.subject, item.source].some((x) => x && String(x).toLowerCase().includes(f));
  };
  function add(item) {
    seen++;
    count.textContent = seen + " events";
    if (paused || !matches(item)) return;
    const e = item.event || {};
    const li = h("li", {},
      h("details", {}, h("summary", {}, h("code", {}, e.type || ""), " ", e.source || "", " ", h("span", { class: "muted" }, "id " + (e.id || "") + " via " + (item.source || ""))),
        h("pre", {}, pretty(e))));
    list.prepend(li);
    while (list.children.length > keep) list.lastChild.remove();
  }
  root.append(h("h1", {}, "Live tail"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "tail-filter" }, "Filter"), filter),
      h("div", { class: "field" }, toggle),
      h("div", { class: "field" }, h("button", { type: "button", class: "secondary", onclick: () => list.replaceChildren() }, "Clear"))),
    status, count, list);
  const ctl = new AbortController();
  state.tail = ctl;
  try {
    const headers = { Accept: "text/event-stream" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const resp = await fetch("/api/v1/tail", { headers, signal: ctl.signal });
    if (resp.status === 401) throw new Unauthorized("");
    if (!resp.ok) throw new Error(resp.status + ": " + (await resp.text()).split("\n")[0]);
    status.textContent = "Live.";
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        try { add(JSON.parse(data)); } catch (e) { /* a malformed frame is skipped */ }
      }
    }
    status.textContent = "The stream ended; reload the page to reconnect.";
  } catch (err) {
    if (ctl.signal.aborted) return;
    if (err instanceof Unauthorized) return failed(err);
    status.textContent = "Disconnected: " + err.message;
  }
}

const sampleEvent = {
  specversion: "1.0", id: "sandbox-1", source: "/console", type: "com.example.test",
  datacontenttype: "application/json", data: { hello: "world" },
};

async function sandbox(root) {
  const text = h("textarea", { id: "sb-event", rows: 12, spellcheck: "false" }, pretty(sampleEvent));
  const source = h("select", { id: "sb-source" }, h("option", { value: "" }, "(the first source)"));
  const out = h("div", { "aria-live": "polite", id: "sb-result" });
  try {
    const st = await api("GET", "/api/v1/status");
    for (const s of st.sources || []) source.append(h("option", { value: s.name }, s.name));
  } catch (err) { if (err instanceof Unauthorized) return failed(err); }
  async function run() {
    let ev;
    try { ev = JSON.parse(text.value); } catch (e) {
      out.replaceChildren(h("p", { class: "badge bad", role: "alert" }, "Not JSON: " + e.message));
      return;
    }
    try {
      const body = { event: ev };
      if (source.value) body.source = source.value;
      const res = await api("POST", "/api/v1/routes/test", body);
      const routes = res.routes || [];
      out.replaceChildren(h("h2", {}, "Result"),
        ...(routes.length ? routes.map((r) => h("div", { class: "card", "data-route": r.route },
          h("h3", {}, "Route " + r.route + " ", r.matched ? badge("matches", "ok") : badge(r.error ? "filter error" : "does not match", r.error ? "bad" : "idle")),
          r.error ? h("pre", {}, r.error) : null,
          (r.deliveries || []).map((d) => h("div", {}, h("p", {}, "Sink ", h("strong", {}, d.sink), " would receive:"), h("pre", {}, pretty(d.event))))))
          : [h("p", { class: "muted" }, "No route takes events from this source.")]));
    } catch (err) {
      if (err instanceof Unauthorized) return failed(err);
      out.replaceChildren(h("p", { class: "badge bad", role: "alert" }, err.message));
    }
  }
  root.append(h("h1", {}, "Route sandbox"),
    h("p", { class: "muted" }, "Paste a CloudEvent (structured JSON): see which routes match and what each sink would receive. Nothing is journaled or delivered."),
    h("form", { onsubmit: (e) => { e.preventDefault(); run(); } },
      h("div", {}, h("label", { for: "sb-event" }, "Event"), text),
      h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: "sb-source" }, "Arrives on source"), source),
        h("div", { class: "field" }, h("button", { type: "submit" }, "Test routes")))),
    out);
}

// ---- router --------------------------------------------------------------

async function show() {
  stopPage();
  notice("");
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "overview").split("?");
  const name = pages[path] ? path : "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const root = h("div", {});
  main().replaceChildren(root);
  document.title = document.querySelector(`nav a[data-page="${name}"]`).textContent + " · Junction console";
  try { await pages[name](root, new URLSearchParams(query || "")); } catch (err) { failed(err); }
}

async function start() {
  try {
    const s = await session(state.token);
    if (!s.signedIn) {
      const had = state.token !== "";
      state.token = "";
      sessionStorage.removeItem("junction-token");
      signIn(had ? "That token was refused." : "");
      return;
    }
  } catch (err) {
    notice(err.message, true);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = !state.token;
  await show();
}

window.addEventListener("hashchange", () => { show(); main().focus(); });
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem("junction-token");
    signIn("");
  });
  start();
});
