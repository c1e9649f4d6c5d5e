// invsync live console: SKUs × channels from WS /v1/feed, sync latency from GET /metrics, and
// the panels of its own modules: the SKU drill-down (detail.js), channel health with latency
// over time (health.js), incidents resolved from the page (incidents.js) and the recent events
// (events.js). Plain modern JS modules, no build step, no third party.
//
// Feed protocol (daemon/feed.py): send {"op":"subscribe","skus":[],"channels":[],"events":true}
// (empty = all); receive a "snapshot" (it replaces all state), then "availability" deltas (a
// delta whose version is not newer than the cell's is ignored), "exception" records, "event"s
// (accepted events), "heartbeat"s, "resync" (a new snapshot follows) and "error". A dropped
// connection is retried with backoff and resubscribes; its first snapshot replaces whatever the
// page showed.

import { closeSku, incidentsChanged, openSku, selectedSku, skuChanged, startDetail } from "./detail.js";
import { acceptedEvent, availabilityEvent, incidentEvent, startEvents } from "./events.js";
import { startHealth } from "./health.js";
import { checkExceptions, openIncidents, showIncident, startIncidents, upsertException } from "./incidents.js";
import { $, el, fmtSeconds } from "./util.js";

const FEED_PATH = "v1/feed"; // relative: the page also works under a reverse proxy's prefix
const METRICS_PATH = "metrics";
const LATENCY_METRIC = "invsync_sync_latency_seconds";
const METRICS_EVERY_MS = 10_000;
const LATENCY_WINDOW_MS = 5 * 60_000;
const STALE_MS = 60_000; // nothing at all (not even a heartbeat) for this long: reconnect
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

const state = {
  cells: new Map(), // sku -> Map(channel -> {available, version})
  skus: [], // sorted
  rows: new Map(), // sku -> <tr>
  channels: [], // sorted column ids
  latencyChannels: new Set(), // channels seen in /metrics (a column even before any SKU)
  filter: "",
};

// --- table ------------------------------------------------------------------------------

function cellText(cell) {
  return cell === undefined ? "–" : String(cell.available);
}

function paintCell(td, cell) {
  td.textContent = cellText(cell);
  td.dataset.version = cell === undefined ? "" : String(cell.version);
  td.classList.toggle("out", cell !== undefined && cell.available <= 0);
}

function makeRow(sku) {
  const tr = document.createElement("tr");
  tr.dataset.sku = sku;
  // The SKU opens its drill-down: a button, so keyboards and touch reach it too.
  tr.append(el("th", { scope: "row", class: "sku" },
    el("button", { type: "button", class: "link", title: "per location and per channel" }, sku)));
  if (sku === selectedSku()) tr.setAttribute("aria-selected", "true");
  const cells = state.cells.get(sku);
  for (const channel of state.channels) {
    const td = document.createElement("td");
    td.dataset.channel = channel;
    paintCell(td, cells.get(channel));
    tr.append(td);
  }
  tr.hidden = !matches(sku);
  return tr;
}

function renderHead() {
  const head = $("channels-row");
  const latency = $("latency-row");
  head.replaceChildren(head.firstElementChild);
  latency.replaceChildren(latency.firstElementChild);
  for (const channel of state.channels) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = channel;
    th.dataset.channel = channel;
    head.append(th);
    const lat = document.createElement("td");
    lat.dataset.channel = channel;
    lat.textContent = "–";
    latency.append(lat);
  }
  renderLatency();
}

function renderAll() {
  const channels = new Set(state.latencyChannels);
  for (const cells of state.cells.values()) for (const c of cells.keys()) channels.add(c);
  state.channels = [...channels].sort();
  state.skus = [...state.cells.keys()].sort();
  state.rows.clear();
  const body = document.createDocumentFragment();
  for (const sku of state.skus) {
    const tr = makeRow(sku);
    state.rows.set(sku, tr);
    body.append(tr);
  }
  renderHead();
  $("rows").replaceChildren(body);
  renderCounts();
}

function sortedIndex(list, value) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function flash(td, up) {
  td.classList.remove("flash", "up", "down");
  void td.offsetWidth; // restart the animation when a cell changes again while flashing
  td.classList.add("flash", up ? "up" : "down");
}

function replaceState(items) {
  state.cells = new Map();
  for (const item of items) upsertCell(item);
  renderAll();
}

function upsertCell(item) {
  let cells = state.cells.get(item.sku);
  if (cells === undefined) state.cells.set(item.sku, (cells = new Map()));
  cells.set(item.channel, { available: item.available, version: item.version });
}

function applyDelta(msg) {
  skuChanged(msg.sku);
  const cells = state.cells.get(msg.sku);
  const old = cells?.get(msg.channel);
  if (old !== undefined && msg.version <= old.version) return; // stale or repeated
  upsertCell(msg);
  if (!state.channels.includes(msg.channel)) {
    renderAll(); // a new column: rebuild (rare: a channel onboarded)
    return;
  }
  let tr = state.rows.get(msg.sku);
  if (tr === undefined) {
    const at = sortedIndex(state.skus, msg.sku);
    state.skus.splice(at, 0, msg.sku);
    tr = makeRow(msg.sku);
    state.rows.set(msg.sku, tr);
    $("rows").insertBefore(tr, state.rows.get(state.skus[at + 1]) ?? null);
    renderCounts();
  }
  const td = tr.querySelector(`td[data-channel="${CSS.escape(msg.channel)}"]`);
  const cell = state.cells.get(msg.sku).get(msg.channel);
  paintCell(td, cell);
  if (old === undefined || old.available !== cell.available) {
    flash(td, old === undefined || cell.available > old.available);
  }
}

// --- filter -----------------------------------------------------------------------------

function matches(sku) {
  return state.filter === "" || sku.toLowerCase().includes(state.filter);
}

function applyFilter() {
  state.filter = $("filter").value.trim().toLowerCase();
  for (const [sku, tr] of state.rows) tr.hidden = !matches(sku);
  renderCounts();
}

function renderCounts() {
  const total = state.skus.length;
  const shown = state.filter === "" ? total : state.skus.filter(matches).length;
  const skus = total === 1 ? "SKU" : "SKUs";
  $("counts").textContent = shown === total ? `${total} ${skus}` : `${shown} of ${total} ${skus}`;
  $("empty").hidden = total > 0;
}

// --- connection status and the feed -----------------------------------------------------

const feed = { socket: null, attempt: 0, staleTimer: 0, retryTimer: 0, everOpened: false };

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status-text").textContent = text;
}

function feedUrl() {
  const url = new URL(FEED_PATH, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

function connect() {
  clearTimeout(feed.retryTimer);
  setStatus("connecting", feed.everOpened ? "reconnecting…" : "connecting…");
  const socket = new WebSocket(feedUrl());
  feed.socket = socket;
  let opened = false;
  socket.addEventListener("open", () => {
    if (socket !== feed.socket) return;
    opened = feed.everOpened = true;
    socket.send(JSON.stringify({ op: "subscribe", skus: [], channels: [], events: true }));
    setStatus("connecting", "subscribed, waiting for the snapshot…");
    touch();
  });
  socket.addEventListener("message", (event) => {
    if (socket !== feed.socket) return;
    touch();
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return; // not ours to interpret
    }
    handle(msg);
  });
  socket.addEventListener("close", (event) => {
    if (socket !== feed.socket) return; // a socket we already gave up on
    feed.socket = null;
    clearTimeout(feed.staleTimer);
    // A handshake refused (e.g. 401 without a token) never opens: find out why.
    if (!opened || event.code === 1008) checkExceptions();
    retry(opened ? `connection lost (${event.code})` : "cannot connect");
  });
}

function retry(why) {
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** feed.attempt);
  feed.attempt += 1;
  const wait = Math.round(delay * (0.5 + Math.random() / 2)); // jitter: no thundering herd
  setStatus("down", `${why}; retrying in ${Math.ceil(wait / 1000)} s`);
  feed.retryTimer = setTimeout(connect, wait);
}

function touch() {
  clearTimeout(feed.staleTimer);
  feed.staleTimer = setTimeout(() => {
    const socket = feed.socket;
    feed.socket = null; // its close event (possibly much later) is ignored
    socket?.close();
    retry("no message for a minute");
  }, STALE_MS);
}

function handle(msg) {
  switch (msg.type) {
    case "snapshot":
      replaceState(msg.items ?? []);
      feed.attempt = 0;
      setStatus("live", "live");
      checkExceptions();
      break;
    case "availability":
      applyDelta(msg);
      availabilityEvent(msg);
      break;
    case "exception": {
      const rec = msg.exception ?? msg.record ?? msg;
      upsertException(rec);
      incidentEvent(rec);
      break;
    }
    case "event":
      acceptedEvent(msg);
      break;
    case "heartbeat":
      break; // touch() has noted that the connection is alive
    case "resync":
      setStatus("connecting", `resyncing (${msg.reason ?? "server asked"})…`);
      break;
    case "error": {
      const error = msg.error ?? {};
      setStatus("error", `feed error: ${error.code ?? "?"} ${error.message ?? ""}`.trim());
      break;
    }
    default:
      break; // a newer server's message kind: ignore
  }
}

// --- sync latency from /metrics ---------------------------------------------------------

const scrapes = []; // [{at, hist: Map(channel -> [{le, count}] sorted by le)}], oldest first

function parseLabels(text) {
  const labels = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
  }
  return labels;
}

// Channel -> cumulative buckets of one histogram in a Prometheus text exposition.
function parseHistogram(text, name) {
  const prefix = `${name}_bucket{`;
  const hist = new Map();
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const close = line.lastIndexOf("}");
    const labels = parseLabels(line.slice(prefix.length, close));
    const count = Number(line.slice(close + 1).trim().split(/\s+/)[0]);
    const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
    if (labels.channel === undefined || Number.isNaN(le) || Number.isNaN(count)) continue;
    if (!hist.has(labels.channel)) hist.set(labels.channel, []);
    hist.get(labels.channel).push({ le, count });
  }
  for (const buckets of hist.values()) buckets.sort((a, b) => a.le - b.le);
  return hist;
}

// Prometheus' histogram_quantile: linear within the bucket that holds the rank. Returns
// {value, above} (above: beyond the largest finite bucket) or null with no observations.
export function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (le === Infinity) return { value: lower, above: true };
      return { value: lower + ((le - lower) * (rank - below)) / (count - below), above: false };
    }
    lower = le;
    below = count;
  }
  return { value: lower, above: true };
}

// Observations between two scrapes (all since start without a base, or after a counter reset).
function windowBuckets(now, base) {
  if (base === undefined || now.length !== base.length) return now;
  const out = now.map((b, i) => ({ le: b.le, count: b.count - base[i].count }));
  return out.some((b) => b.count < 0) ? now : out;
}

function fmtQuantile(result) {
  if (result === null) return "–";
  return result.above ? `> ${fmtSeconds(result.value)}` : fmtSeconds(result.value);
}

function fmtSpan(ms) {
  const s = Math.round(ms / 1000);
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

function renderLatency() {
  const last = scrapes[scrapes.length - 1];
  const label = $("latency-label");
  if (last === undefined) {
    label.textContent = "sync latency";
    return;
  }
  const base = scrapes.length > 1 ? scrapes[0] : undefined;
  const span = base ? `last ${fmtSpan(last.at - base.at)}` : "since daemon start";
  label.textContent = `sync latency p50 / p99 (${span})`;
  for (const td of $("latency-row").querySelectorAll("td[data-channel]")) {
    const now = last.hist.get(td.dataset.channel);
    if (now === undefined) {
      td.textContent = "–";
      td.title = "no observations";
      continue;
    }
    const buckets = windowBuckets(now, base?.hist.get(td.dataset.channel));
    const n = buckets[buckets.length - 1].count;
    const p50 = quantile(buckets, 0.5);
    const p99 = quantile(buckets, 0.99);
    td.textContent = n > 0 ? `${fmtQuantile(p50)} / ${fmtQuantile(p99)}` : "idle";
    td.title = `${n} acknowledged syncs (${span}); estimated from histogram buckets`;
    td.dataset.count = String(n);
  }
}

async function pollMetrics() {
  try {
    const response = await fetch(METRICS_PATH, { cache: "no-store" });
    if (!response.ok) return;
    const at = Date.now();
    scrapes.push({ at, hist: parseHistogram(await response.text(), LATENCY_METRIC) });
    // Keep the newest scrape at least a window old as the base, and everything after it.
    while (scrapes.length > 2 && scrapes[1].at <= at - LATENCY_WINDOW_MS) scrapes.shift();
    const channels = [...scrapes[scrapes.length - 1].hist.keys()];
    const fresh = channels.some((c) => !state.latencyChannels.has(c));
    state.latencyChannels = new Set(channels);
    if (fresh && channels.some((c) => !state.channels.includes(c))) renderAll();
    else renderLatency();
  } catch {
    // the daemon is down: the feed's status already says so
  } finally {
    setTimeout(pollMetrics, METRICS_EVERY_MS);
  }
}

// --- signing in ---------------------------------------------------------------------

// The page signs in with a session cookie (HttpOnly: this script never sees a token). The
// daemon sets it when the browser opens the sign-in link printed at start-up (/?token=...).
function showAuth(status, error) {
  const panel = $("auth");
  if (status === 401) {
    $("auth-title").textContent = "Not signed in: this page needs the daemon's API token.";
    panel.hidden = false;
  } else if (status === 403 || error?.code === "AUTH_MISCONFIGURED") {
    $("auth-title").textContent = `Refused: ${error?.message ?? `HTTP ${status}`}`;
    panel.hidden = false;
  } else {
    panel.hidden = true;
  }
}

// --- start ------------------------------------------------------------------------------

function start() {
  $("filter").addEventListener("input", applyFilter);
  for (const type of ["animationend", "animationcancel"]) {
    // cancel: the row was hidden by the filter mid-flash (it must not replay when shown)
    $("rows").addEventListener(type, (event) => {
      event.target.classList.remove("flash", "up", "down");
    });
  }
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("auth-token").value.trim();
    if (!token) return;
    // The same exchange as the start-up link: the daemon sets the cookie and comes back here.
    const url = new URL(".", location.href);
    url.searchParams.set("token", token);
    location.assign(url);
  });
  $("rows").addEventListener("click", (event) => {
    const tr = event.target.closest("th.sku button")?.closest("tr");
    if (tr) openSku(tr.dataset.sku);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selectedSku() !== null) closeSku();
  });
  applyFilter();
  startEvents({ onSku: openSku });
  startIncidents({
    onAuth: showAuth,
    onChange: incidentsChanged,
  });
  startDetail({ incidents: openIncidents, showIncident });
  startHealth();
  connect();
  pollMetrics();
}

start();
