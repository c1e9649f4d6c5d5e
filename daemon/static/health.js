// Channel health: one card per channel from GET /v1/channels (breaker, queue of pending SKUs,
// pushes by outcome, last success and failure, worker restarts) with a chart of its sync
// latency per minute from GET /v1/channels/latency (p50 and p99, inline SVG, no library).

import { $, api, el, fmtSeconds, timeEl } from "./util.js";

const CHANNELS_PATH = "v1/channels";
const LATENCY_PATH = "v1/channels/latency";
const EVERY_MS = 5_000;
const SVG = "http://www.w3.org/2000/svg";
const W = 240; // chart viewBox
const H = 60;
const PAD = { left: 3, right: 3, top: 14, bottom: 13 };
const SPAN_MIN = 60; // the chart shows the last hour, gaps included

const health = { channels: {}, history: {}, minuteMs: 60_000 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The chart of one channel's minutes: x is time (the last hour), y linear from 0 to the
// largest p99; a minute without syncs breaks the lines.
export function chart(points, minuteMs = 60_000, now = Date.now()) {
  const shown = points.filter((p) => p.count > 0 && p.p50_s !== null);
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "data-points": shown.length,
  });
  const top = Math.max(0.001, ...shown.map((p) => p.p99_s ?? 0)) * 1.1;
  const x0 = now - SPAN_MIN * minuteMs;
  const x = (ms) => PAD.left + ((ms + minuteMs / 2 - x0) / (SPAN_MIN * minuteMs)) * (W - PAD.left - PAD.right);
  const y = (s) => H - PAD.bottom - (s / top) * (H - PAD.top - PAD.bottom);
  root.append(
    svg("title", {}, shown.length
      ? `sync latency per minute, last ${SPAN_MIN} min (p50 dark, p99 light)`
      : "no acknowledged syncs in the last hour"),
    svg("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left, y: 10, class: "label" },
      shown.length ? `p99 up to ${fmtSeconds(Math.max(...shown.map((p) => p.p99_s)))}` : "no syncs yet"),
    svg("text", { x: PAD.left, y: H - 1, class: "label" }, `−${SPAN_MIN} min`),
    svg("text", { x: W - PAD.right, y: H - 1, class: "label end" }, "now"),
  );
  for (const [key, cls] of [["p99_s", "p99"], ["p50_s", "p50"]]) {
    let run = [];
    const flush = () => {
      if (run.length > 1) root.append(svg("polyline", { points: run.join(" "), class: cls }));
      run = [];
    };
    let last = null;
    for (const p of points) {
      if (p.at_ms < x0) continue;
      const usable = p.count > 0 && p[key] !== null;
      if (!usable || (last !== null && p.at_ms - last > minuteMs)) flush();
      if (usable) run.push(`${x(p.at_ms).toFixed(1)},${y(p[key]).toFixed(1)}`);
      last = p.at_ms;
    }
    flush();
  }
  for (const p of shown) {
    if (p.at_ms < x0) continue;
    const dot = svg("circle", { cx: x(p.at_ms).toFixed(1), cy: y(p.p99_s).toFixed(1), r: 2, class: "dot" });
    const minute = new Date(p.at_ms).toTimeString().slice(0, 5);
    const more = p.above ? " (beyond the largest bucket)" : "";
    dot.append(svg("title", {},
      `${minute}${p.partial ? " (so far)" : ""}: ${p.count} syncs, p50 ${fmtSeconds(p.p50_s)}, p99 ${fmtSeconds(p.p99_s)}${more}`));
    root.append(dot);
  }
  return root;
}

function breakerText(entry) {
  if (entry.worker === "not_started") return "not started";
  if (entry.breaker === "open") return "breaker open";
  if (entry.breaker === "half_open") return "breaker half-open";
  if (entry.worker === "restarting") return "restarting";
  return "healthy";
}

function card(id, entry, points) {
  const state = entry.worker === "not_started" ? "off"
    : entry.breaker === "open" ? "bad"
    : entry.breaker === "half_open" || entry.worker === "restarting" ? "warn" : "ok";
  const pushes = entry.pushes ?? {};
  const stat = (name, label, value, title) =>
    el("div", { class: "stat", data: { stat: name }, title },
      el("dt", {}, label), el("dd", {}, value));
  const body = entry.worker === "not_started"
    ? [el("p", { class: "reason" }, entry.reason ?? "")]
    : [
        el("dl", {},
          stat("pending", "pending", String(entry.pending ?? 0), "SKUs whose latest value waits to be pushed (the queue)"),
          stat("ok", "pushed", String(pushes.ok ?? 0), "SKU updates the channel acknowledged since start"),
          stat("throttled", "throttled", String(pushes.throttled ?? 0), "pushes the channel throttled (retried later)"),
          stat("failed", "failed", String((pushes.retryable ?? 0) + (pushes.permanent ?? 0)),
            `retryable ${pushes.retryable ?? 0}, refused for good ${pushes.permanent ?? 0}`),
          stat("restarts", "restarts", String(entry.restarts ?? 0), "worker restarts after a crash"),
        ),
        el("p", { class: "last" }, "last success ", timeEl(entry.last_success_ms)),
        entry.last_failure_ms ? el("p", { class: "last" }, "last failure ", timeEl(entry.last_failure_ms)) : null,
        chart(points ?? [], health.minuteMs),
      ];
  return el("article", { class: "channel", data: { channel: id, state } },
    el("h3", {}, el("span", { class: "name" }, id),
      el("span", { class: "breaker", data: { breaker: entry.breaker ?? entry.worker } }, breakerText(entry))),
    body);
}

function render() {
  const ids = Object.keys(health.channels).sort();
  $("health").replaceChildren(...ids.map((id) => card(id, health.channels[id], health.history[id])));
  $("health-none").hidden = ids.length > 0;
}

async function poll() {
  try {
    const [channels, latency] = await Promise.all([api(CHANNELS_PATH), api(LATENCY_PATH)]);
    if (channels.status === 404) {
      $("health-section").hidden = true; // an older daemon: no such endpoint
      return;
    }
    if (channels.status !== 200 || channels.body === null) return;
    health.channels = channels.body.channels ?? {};
    if (latency.status === 200 && latency.body !== null) {
      health.history = latency.body.channels ?? {};
      health.minuteMs = (latency.body.minute_s ?? 60) * 1000;
    }
    render();
  } catch {
    // the daemon is away: the feed's status says so
  } finally {
    setTimeout(poll, EVERY_MS);
  }
}

export function startHealth() {
  poll();
}
