// The meowmx web console: plain JavaScript on the server's own HTTP API.
// Every page is read in pages (never the whole log), the log is tailed
// over Server-Sent Events read with fetch (so that a token can be sent),
// and text from the store is only ever set as text, never as HTML.
"use strict";

const PAGE = 50;
const LOG_KEEP = 500; // events the live log keeps on screen
const LAG_WINDOW_MS = 10 * 60 * 1000; // lag history drawn
const $view = document.getElementById("view");
let current = null; // the view's AbortController: aborted on navigation

// --- requests -------------------------------------------------------------

function token() {
  return sessionStorage.getItem("meowmx-token") || "";
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, opts = {}) {
  const init = { headers: headers(opts.headers), signal: opts.signal, method: opts.method || "GET" };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    askToken();
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = (body && body.error) || {};
    throw new APIError(resp.status, e.code || "http_" + resp.status, e.message || resp.statusText);
  }
  return body;
}

function askToken(message) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-error").textContent = message || "";
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("meowmx-token", document.getElementById("token").value.trim());
  document.getElementById("login").hidden = true;
  route();
});

// tail reads a live endpoint's Server-Sent Events, reconnecting with
// Last-Event-ID after a break, until signal aborts.
async function tail(path, onEvent, signal, onState) {
  let last = null;
  while (!signal.aborted) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (last !== null) h["Last-Event-ID"] = last;
      const resp = await fetch(path, { headers: h, signal });
      if (resp.status === 401) askToken();
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        throw new Error((body && body.error && body.error.message) || resp.statusText);
      }
      onState("live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let id = null, name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length === 0) continue; // a heartbeat
          if (name === "meowmx-error") throw new Error(JSON.parse(data.join("\n")).error.message);
          onEvent(JSON.parse(data.join("\n")));
          if (id !== null) last = id;
        }
      }
      onState("reconnecting");
    } catch (err) {
      if (signal.aborted) return;
      onState("reconnecting: " + err.message);
    }
    await sleep(1000, signal);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// every runs fn now and then every ms until signal aborts.
async function every(ms, signal, fn) {
  while (!signal.aborted) {
    try {
      await fn();
    } catch (err) {
      if (!signal.aborted) status(err.message, true);
    }
    await sleep(ms, signal);
  }
}

// --- building the page ----------------------------------------------------

// el makes an element: attributes, then children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "error" : "";
}

function streamHref(category, id) {
  return "#/stream/" + encodeURIComponent(category) + "/" + encodeURIComponent(id);
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  const ago = Math.round((Date.now() - d.getTime()) / 1000);
  let rel = ago < 60 ? ago + " s ago" : ago < 3600 ? Math.round(ago / 60) + " min ago" : ago < 86400 ? Math.round(ago / 3600) + " h ago" : Math.round(ago / 86400) + " d ago";
  if (ago < 0) rel = "just now";
  return el("span", { title: d.toISOString() }, rel);
}

function pretty(v) {
  return typeof v === "string" ? v : JSON.stringify(v, null, 2);
}

// eventCard shows an event: its type, stream, version, position, time,
// tags, data and metadata.
function eventCard(e) {
  const stream = e.category + "-" + e.stream_id;
  return el("div", { class: "event", "data-testid": "event", "data-position": e.position, "data-type": e.type },
    el("div", { class: "head" },
      el("span", { class: "type" }, e.type),
      el("a", { href: streamHref(e.category, e.stream_id) }, stream),
      el("span", { class: "meta" }, "version " + e.version),
      el("span", { class: "meta", "data-testid": "position" }, "position " + e.position),
      el("span", { class: "meta" }, when(e.recorded_at)),
      el("span", {}, (e.tags || []).map((t) => el("span", { class: "tag", "data-testid": "tag" }, t)))),
    el("pre", { "data-testid": "data" }, pretty(e.data)),
    e.metadata !== undefined && e.metadata !== null ? el("details", {}, el("summary", { class: "meta" }, "metadata"), el("pre", { "data-testid": "metadata" }, pretty(e.metadata))) : null);
}

function fail(err) {
  $view.append(el("p", { class: "error", "data-testid": "error" }, err.message));
}

// moreButton calls load when clicked, and hides itself while loading.
function moreButton(label, load) {
  const b = el("button", { "data-testid": "more" }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await load();
    } catch (err) {
      fail(err);
    }
    b.disabled = false;
  });
  return b;
}

// --- views ------------------------------------------------------------------

// The log: the last events, then new ones as they come, newest on top.
async function viewLog(signal) {
  $view.append(el("h1", {}, "Log ", el("small", {}, "the newest events, live")));
  const list = el("div", { "data-testid": "log" });
  $view.append(list);
  const everything = encodeURIComponent(JSON.stringify({ items: [{}] }));
  const page = await api("/query?query=" + everything + "&backward=true&limit=" + PAGE, { signal });
  let after = "";
  for (const e of page.events) list.append(eventCard(e));
  if (page.events.length > 0) after = page.events[0].position;
  else list.append(el("p", { class: "empty", "data-testid": "empty" }, "No events yet."));
  tail("/events/live?after=" + encodeURIComponent(after), (e) => {
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    list.prepend(eventCard(e));
    while (list.children.length > LOG_KEEP) list.lastChild.remove();
  }, signal, (state) => status(state, state !== "live"));
}

async function viewCategories(signal) {
  $view.append(el("h1", {}, "Categories"));
  const body = el("tbody");
  $view.append(el("table", { "data-testid": "categories" },
    el("thead", {}, el("tr", {}, el("th", {}, "category"), el("th", { class: "num" }, "streams"), el("th", { class: "num" }, "events"), el("th", {}, "last activity"))),
    body));
  let after = "";
  const load = async () => {
    const page = await api("/categories?limit=" + PAGE + "&after=" + encodeURIComponent(after), { signal });
    for (const c of page.categories) {
      body.append(el("tr", { "data-testid": "category" },
        el("td", {}, el("a", { href: "#/streams/" + encodeURIComponent(c.category) }, c.category)),
        el("td", { class: "num" }, c.streams), el("td", { class: "num" }, c.events), el("td", {}, when(c.last_recorded_at))));
      after = c.category;
    }
    more.hidden = !page.more;
  };
  const more = moreButton("More categories", load);
  $view.append(more);
  await load();
}

async function viewStreams(signal, category) {
  $view.append(el("h1", {}, "Streams of ", category));
  const body = el("tbody");
  $view.append(el("table", { "data-testid": "streams" },
    el("thead", {}, el("tr", {}, el("th", {}, "stream"), el("th", { class: "num" }, "events"), el("th", {}, "last position"), el("th", {}, "last activity"))),
    body));
  let afterID = "";
  const load = async () => {
    const page = await api("/streams?limit=" + PAGE + "&category=" + encodeURIComponent(category) +
      "&after_category=" + encodeURIComponent(category) + "&after_id=" + encodeURIComponent(afterID), { signal });
    for (const s of page.streams) {
      body.append(el("tr", { "data-testid": "stream" },
        el("td", {}, el("a", { href: streamHref(s.category, s.stream_id) }, s.stream_id)),
        el("td", { class: "num" }, s.events), el("td", {}, s.last_position), el("td", {}, when(s.last_recorded_at))));
      afterID = s.stream_id;
    }
    more.hidden = !page.more;
  };
  const more = moreButton("More streams", load);
  $view.append(more);
  await load();
}

// A stream's events, newest first, in pages.
async function viewStream(signal, category, id) {
  $view.append(el("h1", {}, category + "-" + id, " ", el("small", {}, "newest first")));
  const list = el("div", { "data-testid": "stream-events" });
  $view.append(list);
  let from = null;
  const load = async () => {
    let path = "/streams/" + encodeURIComponent(category) + "/" + encodeURIComponent(id) + "?backward=true&limit=" + PAGE;
    if (from !== null) path += "&from=" + from;
    const page = await api(path, { signal });
    for (const e of page.events) list.append(eventCard(e));
    from = page.next;
    more.hidden = page.next === null;
  };
  const more = moreButton("Older events", load);
  $view.append(more);
  await load();
}

// lagHistory keeps each partition's lag since the page opened.
const lagHistory = new Map();

function recordLag(p) {
  const key = p.name + "/" + p.partition;
  const now = Date.now();
  const h = lagHistory.get(key) || [];
  h.push([now, p.lag]);
  while (h.length > 0 && h[0][0] < now - LAG_WINDOW_MS) h.shift();
  lagHistory.set(key, h);
  return h;
}

// sparkline draws a lag history over the last minutes.
function sparkline(history) {
  const w = 180, hgt = 36, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("data-testid", "lag-chart");
  const now = Date.now();
  const top = Math.max(1, ...history.map(([, lag]) => lag));
  const points = history.map(([t, lag]) => {
    const x = w - ((now - t) / LAG_WINDOW_MS) * w;
    const y = hgt - 2 - (lag / top) * (hgt - 4);
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  if (points.length === 1) points.unshift("0," + points[0].split(",")[1]);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = "lag over the last " + LAG_WINDOW_MS / 60000 + " minutes (peak " + top + ")";
  svg.append(title);
  return svg;
}

async function viewSubscriptions(signal) {
  $view.append(el("h1", {}, "Subscriptions ", el("small", {}, "lag over the last " + LAG_WINDOW_MS / 60000 + " minutes")));
  const body = el("tbody");
  $view.append(el("table", { "data-testid": "subscriptions" },
    el("thead", {}, el("tr", {}, el("th", {}, "subscription"), el("th", { class: "num" }, "partition"), el("th", {}, "checkpoint"),
      el("th", { class: "num" }, "lag"), el("th", {}, "lag, recent"), el("th", { class: "num" }, "behind"), el("th", {}, "owner"),
      el("th", {}, "lease until"), el("th", { class: "num" }, "parked"))),
    body));
  const empty = el("p", { class: "empty", hidden: true }, "No subscriptions.");
  $view.append(empty);
  await every(2000, signal, async () => {
    const { partitions } = await api("/subscriptions", { signal });
    body.replaceChildren(...partitions.map((p) => el("tr", { "data-testid": "partition", "data-name": p.name },
      el("td", {}, el("a", { href: "#/subscription/" + encodeURIComponent(p.name) }, p.name)),
      el("td", { class: "num" }, p.partition + " of " + p.partitions),
      el("td", {}, p.checkpoint),
      el("td", { class: "num", "data-testid": "lag" }, (p.lag_capped ? "≥ " : "") + p.lag),
      el("td", {}, sparkline(recordLag(p))),
      el("td", { class: "num" }, p.seconds_behind.toFixed(1) + " s"),
      el("td", { "data-testid": "owner" }, p.owner || "none"),
      el("td", {}, p.lease_until ? when(p.lease_until) : ""),
      el("td", { class: "num", "data-testid": "parked" }, p.parked))));
    empty.hidden = partitions.length > 0;
  });
}

// One subscription: its partitions and its parked events, with replay.
async function viewSubscription(signal, name) {
  $view.append(el("h1", {}, "Subscription ", name));
  const info = el("div");
  const parked = el("div", { "data-testid": "parked-events" });
  const replay = el("button", { "data-testid": "replay" }, "Replay parked events");
  const note = el("span", { class: "meta", "data-testid": "replay-result" });
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    try {
      const r = await api("/subscriptions/" + encodeURIComponent(name) + "/replay", { method: "POST", signal });
      note.textContent = r.replaying + " event(s) will be handled again";
    } catch (err) {
      note.textContent = err.message;
      note.className = "error";
    }
    replay.disabled = false;
  });
  $view.append(info, el("h1", {}, "Parked events"), el("div", { class: "toolbar" }, replay, note), parked);
  await every(2000, signal, async () => {
    const base = "/subscriptions/" + encodeURIComponent(name);
    const [{ partitions }, list] = await Promise.all([api(base, { signal }), api(base + "/parked?limit=" + PAGE, { signal })]);
    info.replaceChildren(el("table", {}, el("tbody", {}, partitions.map((p) => el("tr", {},
      el("td", {}, "partition " + p.partition + " of " + p.partitions),
      el("td", {}, "checkpoint " + p.checkpoint), el("td", {}, "lag " + p.lag),
      el("td", {}, "owner " + (p.owner || "none")), el("td", {}, p.lease_until ? "lease until " + new Date(p.lease_until).toISOString() : "no lease"))))));
    parked.replaceChildren(...(list.parked.length === 0 ? [el("p", { class: "empty" }, "None.")] : list.parked.map((p) => el("div", {},
      el("p", { class: "error", "data-testid": "parked-error" }, "attempts " + p.attempts + (p.replay ? ", replay asked" : "") + ": " + p.error),
      eventCard(p)))));
  });
}

// The banner naming the transaction that holds the horizon.
async function watchHorizon() {
  const banner = document.getElementById("horizon");
  const forever = new AbortController().signal;
  await every(5000, forever, async () => {
    const { horizon: h } = await api("/horizon");
    if (!h) {
      banner.hidden = true;
      return;
    }
    banner.replaceChildren(
      el("strong", {}, "Transaction " + h.transaction_id + " holds the horizon"),
      " (backend pid " + h.pid + ", " + h.state + ", running for " + Math.round(h.age_seconds) + " s, database " + h.database +
      "): the events committed after it started stay out of global reads and subscriptions until it ends.",
      h.query ? el("div", {}, "Its last statement: ", el("code", {}, h.query)) : null);
    banner.hidden = false;
  });
}

// --- routing ----------------------------------------------------------------

function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  $view.replaceChildren();
  status("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a malformed escape: the text as typed
    }
  });
  const name = parts[0] || "log";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === name || (a.dataset.nav === "categories" && name.startsWith("stream")) || (a.dataset.nav === "subscriptions" && name === "subscription"));
  const views = {
    log: () => viewLog(signal),
    categories: () => viewCategories(signal),
    streams: () => viewStreams(signal, parts[1]),
    stream: () => viewStream(signal, parts[1], parts.slice(2).join("/")),
    subscriptions: () => viewSubscriptions(signal),
    subscription: () => viewSubscription(signal, parts[1]),
  };
  (views[name] || views.log)().catch((err) => {
    if (!signal.aborted) fail(err);
  });
}

window.addEventListener("hashchange", route);
route();
watchHorizon();
