// The SKU drill-down: GET /v1/stock/{sku} shown per location (on hand, reserved, safety stock,
// damaged, incoming, available) and per channel (available now, what the channel was last sent,
// whether a push is pending, when the channel acknowledged it), with the SKU's open incidents.
// It reloads when the feed says the SKU changed and every few seconds while open (an
// acknowledgement changes "pushed" without a feed message). The URL keeps it: #sku=<SKU>.

import { $, api, el, timeEl } from "./util.js";

const EVERY_MS = 3_000;
const DEBOUNCE_MS = 200;

const detail = { sku: null, timer: 0, soon: 0, incidents: () => [], showIncident: () => {} };

export function selectedSku() {
  return detail.sku;
}

export function openSku(sku) {
  detail.sku = sku;
  const hash = `#sku=${encodeURIComponent(sku)}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  $("detail").hidden = false;
  $("detail-title").textContent = sku;
  $("detail-body").replaceChildren(el("p", { class: "muted" }, "loading…"));
  for (const tr of document.querySelectorAll("#rows tr[aria-selected]")) tr.removeAttribute("aria-selected");
  document.querySelector(`#rows tr[data-sku="${CSS.escape(sku)}"]`)?.setAttribute("aria-selected", "true");
  load();
  $("detail").scrollIntoView({ block: "nearest" });
}

export function closeSku() {
  detail.sku = null;
  clearTimeout(detail.timer);
  $("detail").hidden = true;
  for (const tr of document.querySelectorAll("#rows tr[aria-selected]")) tr.removeAttribute("aria-selected");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

// The feed changed ``sku``: reload the drill-down soon if it shows that SKU.
export function skuChanged(sku) {
  if (sku !== detail.sku) return;
  clearTimeout(detail.soon);
  detail.soon = setTimeout(load, DEBOUNCE_MS);
}

// The SKU's open incidents changed: redraw their links.
export function incidentsChanged() {
  if (detail.sku !== null && !$("detail").hidden) renderIncidents();
}

async function load() {
  clearTimeout(detail.timer);
  const sku = detail.sku;
  if (sku === null) return;
  try {
    const { status, body } = await api(`v1/stock/${encodeURIComponent(sku)}`);
    if (sku !== detail.sku) return; // another SKU was opened meanwhile
    if (status === 200 && body !== null) render(body);
    else if (status === 404) $("detail-body").replaceChildren(el("p", { class: "muted" }, "no stock recorded for this SKU"));
    else $("detail-body").replaceChildren(el("p", { class: "error" }, `${body?.error?.code ?? `HTTP ${status}`}: ${body?.error?.message ?? ""}`));
  } catch {
    // the daemon is away: the feed's status says so; try again on the timer
  } finally {
    if (sku === detail.sku) detail.timer = setTimeout(load, EVERY_MS);
  }
}

const LOCATION_COLUMNS = [
  ["on_hand", "on hand"],
  ["reserved", "reserved"],
  ["safety_stock", "safety"],
  ["damaged", "damaged"],
  ["incoming", "incoming"],
  ["available", "available"],
];

function table(caption, head, rows) {
  return el("table", { class: "grid" },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i ? "" : "name" }, h)))),
    el("tbody", {}, rows));
}

// Where a channel stands for this SKU: pushed and in step, a push pending, or never sent.
export function pushState(entry) {
  if (entry.pushed === null || entry.pushed === undefined) return ["pending", "not pushed yet"];
  if (entry.pushed !== entry.available) return ["pending", `pending (${entry.available} to send)`];
  return ["synced", "in step"];
}

function render(view) {
  const locations = Object.entries(view.locations ?? {});
  const channels = Object.entries(view.channels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const parts = [
    el("p", { class: "muted" }, `version ${view.version}`,
      view.bundle ? ` · bundle of ${Object.entries(view.bundle.components).map(([c, n]) => `${c} ×${n}`).join(", ")}` : ""),
  ];
  if (locations.length) {
    parts.push(table("per location", ["location", ...LOCATION_COLUMNS.map(([, label]) => label)],
      locations.map(([loc, s]) => el("tr", { data: { location: loc } },
        el("th", { scope: "row", class: "name" }, loc),
        LOCATION_COLUMNS.map(([key]) => el("td", { data: { field: key } }, String(s[key] ?? 0)))))));
  }
  parts.push(table("per channel", ["channel", "available", "pushed", "state", "last push acknowledged"],
    channels.map(([ch, c]) => {
      const [state, text] = pushState(c);
      return el("tr", { data: { channel: ch, state } },
        el("th", { scope: "row", class: "name" }, ch),
        el("td", { data: { field: "available" } }, String(c.available)),
        el("td", { data: { field: "pushed" } }, c.pushed === null || c.pushed === undefined ? "–" : String(c.pushed)),
        el("td", { data: { field: "state" }, class: state }, text),
        el("td", { data: { field: "pushed_at" } }, c.pushed_ms ? timeEl(c.pushed_ms) : "–"));
    })));
  parts.push(el("div", { id: "detail-incidents" }));
  $("detail-body").replaceChildren(...parts);
  renderIncidents();
}

function renderIncidents() {
  const box = $("detail-incidents");
  if (box === null) return;
  const mine = detail.incidents().filter((rec) => rec.sku === detail.sku);
  box.replaceChildren(...(mine.length
    ? [el("h3", {}, `open incidents (${mine.length})`),
       el("ul", {}, mine.map((rec) => el("li", {},
         el("button", { type: "button", class: "link", on: { click: () => detail.showIncident(rec.id) } },
           `${rec.kind}${rec.channel ? ` on ${rec.channel}` : ""}`),
         ` ${rec.summary ?? ""}`)))]
    : []));
}

export function startDetail({ incidents, showIncident }) {
  detail.incidents = incidents;
  detail.showIncident = showIncident;
  $("detail-close").addEventListener("click", closeSku);
  const fromHash = () => {
    const m = /^#sku=(.+)$/.exec(location.hash);
    if (m) openSku(decodeURIComponent(m[1]));
  };
  window.addEventListener("hashchange", fromHash);
  fromHash();
}
