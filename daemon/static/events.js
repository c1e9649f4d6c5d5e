// The live list of recent events, newest first: requests of events the daemon accepted (the
// feed's "event" messages), the availability changes they caused (one line per SKU version, every channel's
// new value on it) and incidents opened or resolved. Nothing is fetched: it is the feed, as it
// arrives, and it starts empty when the page opens.

import { $, el, isoTime } from "./util.js";

const MAX_SHOWN = 100;

const recent = { changes: new Map(), onSku: () => {} }; // "sku@version" -> its <li>

function add(li) {
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_SHOWN) {
    const last = list.lastElementChild;
    if (last.dataset.key) recent.changes.delete(last.dataset.key);
    last.remove();
  }
  $("events-none").hidden = true;
}

function stamp(ms) {
  const text = isoTime(ms);
  return el("time", { datetime: text, title: text }, text.slice(11, 19));
}

function skuButton(sku) {
  return el("button", { type: "button", class: "link sku", on: { click: () => recent.onSku(sku) } }, sku);
}

// An availability delta: joins the line of its SKU version (its other channels) or starts one.
export function availabilityEvent(msg) {
  const key = `${msg.sku}@${msg.version}`;
  let li = recent.changes.get(key);
  if (li === undefined) {
    li = el("li", { data: { kind: "availability", key, sku: msg.sku } },
      stamp(msg.ts ?? Date.now()), el("span", { class: "what" }, "stock"), skuButton(msg.sku),
      el("span", { class: "version muted" }, `v${msg.version}`), el("span", { class: "values" }));
    recent.changes.set(key, li);
    add(li);
  }
  const values = li.querySelector(".values");
  const existing = values.querySelector(`[data-channel="${CSS.escape(msg.channel)}"]`);
  const text = `${msg.channel} ${msg.available}`;
  if (existing) existing.textContent = text;
  else values.append(el("span", { class: "value", data: { channel: msg.channel } }, text));
}

// A request the daemon accepted (one feed message each, its first events listed): what they
// are, the SKUs and order they name, where they came from.
export function acceptedEvent(msg) {
  const listed = msg.events ?? [];
  const types = [...new Set(listed.map((e) => e.event_type))];
  const skus = [...new Set(listed.flatMap((e) => e.skus ?? []))];
  const orders = [...new Set(listed.map((e) => e.order_id).filter(Boolean))];
  const channels = [...new Set(listed.map((e) => e.channel).filter(Boolean))];
  const count = msg.count ?? listed.length;
  add(el("li", { data: { kind: "event", id: listed[0]?.id ?? "", count: String(count) } },
    stamp(msg.ts ?? Date.now()),
    el("span", { class: "what" }, count > 1 ? `${count} events` : "event"),
    el("span", {}, types.join(", ")),
    skus.slice(0, 3).map(skuButton),
    skus.length > 3 ? el("span", { class: "muted" }, `+${skus.length - 3} SKUs`) : null,
    orders.slice(0, 2).map((o) => el("span", {}, `order ${o}`)),
    el("span", { class: "muted source" }, [channels.join(", "), `via ${msg.source ?? "?"}`].filter(Boolean).join(" "))));
}

// An incident record as the feed sends it (opened, updated or resolved).
export function incidentEvent(rec) {
  const state = String(rec.state ?? rec.status ?? "open");
  const ms = rec.updated_ms ?? rec.created_ms ?? Date.now();
  add(el("li", { data: { kind: "incident", id: String(rec.id ?? ""), state } },
    stamp(ms), el("span", { class: "what incident" }, `${rec.kind ?? "exception"} ${state.replace("_", "-")}`),
    rec.sku ? skuButton(rec.sku) : null,
    rec.channel ? el("span", {}, `on ${rec.channel}`) : null,
    rec.resolved_by ? el("span", { class: "muted" }, `by ${rec.resolved_by}`) : null));
}

export function startEvents({ onSku }) {
  recent.onSku = onSku;
}
