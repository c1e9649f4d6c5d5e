// Open exceptions (incidents): listed from GET /v1/exceptions and kept current by the feed's
// "exception" records; each opens to its context (details, the order's fulfilment handoff) and
// its options, and is resolved from here: POST /v1/exceptions/{id}/resolve with JSON, under the
// session cookie (the daemon records the credential's name as resolved_by). An action is taken
// in two clicks (the first arms the button), as a destructive one (cancel) deserves.

import { $, api, el, timeEl } from "./util.js";

const EXCEPTIONS_PATH = "v1/exceptions";
const EVERY_MS = 30_000;
const MAX_SHOWN = 200;
const ARMED_MS = 6_000;
const KEEP_RESOLVED_MS = 5_000;

const incidents = {
  open: new Map(), // id -> record
  items: new Map(), // id -> {li, rec, expanded}
  resolvedHere: new Map(), // id -> record, shown a few seconds after this page resolved it
  fetching: new Set(), // per GET /v1/exceptions in flight: the feed's records since it began
  onAuth: () => {},
  onChange: () => {},
};

export function exceptionId(rec) {
  return String(rec.id ?? rec.exception_id ?? JSON.stringify(rec));
}

function isResolved(rec) {
  const status = String(rec.status ?? rec.state ?? "").toLowerCase();
  return rec.resolved === true || ["resolved", "closed", "auto_resolved"].includes(status);
}

function remember(rec) {
  if (rec === null || typeof rec !== "object") return;
  const id = exceptionId(rec);
  if (isResolved(rec)) incidents.open.delete(id);
  else incidents.open.set(id, rec);
}

export function openIncidents() {
  return [...incidents.open.values()];
}

// A record from the feed: new, updated or resolved.
export function upsertException(rec) {
  for (const seen of incidents.fetching) seen.push(rec);
  remember(rec);
  render();
}

function createdMs(rec) {
  const raw = rec.created_ms ?? rec.ts ?? rec.at ?? rec.created_at;
  if (raw === undefined) return null;
  if (typeof raw === "number") return raw < 1e12 ? raw * 1000 : raw;
  const ms = Date.parse(raw);
  return Number.isNaN(ms) ? null : ms;
}

function subject(rec) {
  return [
    rec.sku && `SKU ${rec.sku}`,
    rec.channel && `on ${rec.channel}`,
    rec.order_id && `order ${rec.order_id}`,
  ].filter(Boolean).join(" · ");
}

function value(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function context(rec) {
  const rows = Object.entries(rec.details ?? {}).map(([k, v]) => {
    const when = /_ms$/.test(k) && typeof v === "number" ? timeEl(v) : value(v);
    const label = (when === value(v) ? k : k.replace(/_ms$/, "")).replaceAll("_", " ");
    return el("div", {}, el("dt", {}, label), el("dd", {}, when));
  });
  if (rec.event_id) rows.unshift(el("div", {}, el("dt", {}, "event"), el("dd", {}, rec.event_id)));
  return rows.length ? el("dl", { class: "context" }, rows) : null;
}

async function loadOrder(rec, box) {
  const path = `v1/orders/${encodeURIComponent(rec.channel)}/${encodeURIComponent(rec.order_id)}`;
  try {
    const { status, body } = await api(path);
    if (status !== 200 || body === null) {
      box.replaceChildren(el("p", { class: "muted" }, status === 404 ? "no order record" : `order: HTTP ${status}`));
      return;
    }
    const handoff = Object.entries(body.handoff ?? {});
    box.replaceChildren(
      el("p", {}, "order ", el("strong", {}, body.outcome ?? "?"),
        body.state ? ` · ${body.state}` : "",
        handoff.length === 0 ? "" : " · fulfilment: ",
        handoff.map(([loc, part], i) =>
          el("span", { class: "handoff", data: { state: part.state } }, `${i ? ", " : ""}${loc} ${part.state}`))),
    );
  } catch {
    box.replaceChildren();
  }
}

function optionRow(rec, option, item) {
  const button = el("button", {
    type: "button",
    class: "action",
    disabled: option.possible === false,
    data: { action: option.action },
  }, option.action.replaceAll("_", " "));
  button.addEventListener("click", () => act(rec, option, button, item));
  return el("div", { class: "option" }, button,
    el("span", { class: "effect" }, option.effect ?? ""),
    option.possible === false && option.why_not ? el("span", { class: "why-not" }, ` (${option.why_not})`) : null);
}

function detail(rec, item) {
  const options = rec.options ?? [];
  const order = rec.order_id && rec.channel ? el("div", { class: "order" }, el("p", { class: "muted" }, "order…")) : null;
  if (order) loadOrder(rec, order);
  const needsSku = options.some((o) => o.action === "substitute");
  const attempts = rec.attempts ?? [];
  return el("div", { class: "detail" },
    context(rec),
    order,
    attempts.length
      ? el("p", { class: "attempts" }, `tried ${attempts.length}×; last: ${value(attempts[attempts.length - 1])}`)
      : null,
    options.length
      ? el("div", { class: "options" },
          options.map((o) => optionRow(rec, o, item)),
          needsSku ? el("label", {}, "substitute SKU ", el("input", { class: "sku", type: "text", autocomplete: "off", spellcheck: "false" })) : null,
          el("label", {}, "note ", el("input", { class: "note", type: "text", maxlength: "500", autocomplete: "off" })))
      : el("p", { class: "muted" }, "no actions offered"),
    el("p", { class: "result", role: "status" }));
}

async function act(rec, option, button, item) {
  const li = item.li;
  const result = li.querySelector(".result");
  if (button.dataset.armed !== "1") {
    for (const other of li.querySelectorAll("button.action[data-armed='1']")) disarm(other);
    button.dataset.armed = "1";
    button.textContent = `confirm ${option.action.replaceAll("_", " ")}`;
    button._disarm = setTimeout(() => disarm(button), ARMED_MS);
    return;
  }
  disarm(button);
  const body = { action: option.action };
  const note = li.querySelector("input.note")?.value.trim();
  if (note) body.note = note;
  if (option.action === "substitute") {
    const sku = li.querySelector("input.sku")?.value.trim();
    if (!sku) {
      result.textContent = "substitute needs the SKU to ship instead";
      result.dataset.outcome = "error";
      return;
    }
    body.sku = sku;
  }
  for (const b of li.querySelectorAll("button.action")) b.disabled = true;
  result.textContent = `${option.action}…`;
  result.dataset.outcome = "busy";
  let answer;
  try {
    answer = await api(`${EXCEPTIONS_PATH}/${encodeURIComponent(exceptionId(rec))}/resolve`, {
      method: "POST",
      body,
    });
  } catch {
    answer = { status: 0, body: null };
  }
  const { status, body: out } = answer;
  if (status === 200 && out !== null) {
    if (isResolved(out)) {
      incidents.resolvedHere.set(exceptionId(out), out);
      setTimeout(() => {
        incidents.resolvedHere.delete(exceptionId(out));
        render();
      }, KEEP_RESOLVED_MS);
      remember(out);
      item.rec = out;
      render();
      return;
    }
    remember(out); // still open: the attempt is in its record
    item.rec = out;
    item.stamp = null; // redraw with the attempt
    render();
    const again = item.li.querySelector(".result");
    again.textContent = `still open after ${option.action}: see the last attempt`;
    again.dataset.outcome = "open";
    return;
  }
  if (status === 401 || status === 403) incidents.onAuth(status, out?.error);
  for (const b of li.querySelectorAll("button.action")) {
    b.disabled = (rec.options ?? []).find((o) => o.action === b.dataset.action)?.possible === false;
  }
  const error = out?.error;
  result.textContent = error ? `${error.code}: ${error.message}` : `failed (HTTP ${status || "unreachable"})`;
  result.dataset.outcome = "error";
}

function disarm(button) {
  clearTimeout(button._disarm);
  delete button.dataset.armed;
  button.textContent = button.dataset.action.replaceAll("_", " ");
}

function stampOf(rec) {
  return `${rec.updated_ms ?? ""}|${rec.state ?? rec.status ?? ""}|${(rec.options ?? []).length}`;
}

function build(rec, item) {
  const id = exceptionId(rec);
  const resolved = isResolved(rec);
  const head = el("button", { type: "button", class: "head", "aria-expanded": String(item.expanded) },
    el("span", { class: "kind" }, String(rec.kind ?? "exception")),
    el("span", { class: "subject" }, subject(rec)),
    createdMs(rec) !== null ? timeEl(createdMs(rec)) : null);
  head.addEventListener("click", () => {
    item.expanded = !item.expanded;
    item.stamp = null;
    render();
  });
  const summary = el("p", { class: "summary" },
    String(rec.summary ?? rec.message ?? rec.what ?? rec.detail ?? rec.description ?? ""));
  const li = el("li", { data: { id, kind: String(rec.kind ?? "") }, class: resolved ? "resolved" : "" },
    head, summary);
  if (resolved) {
    li.append(el("p", { class: "result", role: "status", data: { outcome: "resolved" } },
      `resolved: ${rec.action ?? "?"} by ${rec.resolved_by ?? "?"}`));
  } else if (item.expanded) {
    li.append(detail(rec, item));
  }
  return li;
}

function render() {
  const list = $("exceptions");
  const shown = [...incidents.open.values(), ...incidents.resolvedHere.values()]
    .filter((rec, i, all) => all.findIndex((r) => exceptionId(r) === exceptionId(rec)) === i)
    .sort((a, b) => (createdMs(b) ?? 0) - (createdMs(a) ?? 0))
    .slice(0, MAX_SHOWN);
  const wanted = new Set(shown.map(exceptionId));
  for (const id of [...incidents.items.keys()]) if (!wanted.has(id)) incidents.items.delete(id);
  const lis = shown.map((rec) => {
    const id = exceptionId(rec);
    const current = incidents.resolvedHere.get(id) ?? rec;
    let item = incidents.items.get(id);
    if (item === undefined) incidents.items.set(id, (item = { li: null, rec: current, expanded: false, stamp: null }));
    const stamp = stampOf(current) + (item.expanded ? "+" : "");
    if (item.li === null || item.stamp !== stamp) {
      // Typed text survives a redraw (a record updated while the operator writes a note).
      const note = item.li?.querySelector("input.note")?.value;
      const sku = item.li?.querySelector("input.sku")?.value;
      item.rec = current;
      item.li = build(current, item);
      if (note) item.li.querySelector("input.note") && (item.li.querySelector("input.note").value = note);
      if (sku) item.li.querySelector("input.sku") && (item.li.querySelector("input.sku").value = sku);
      item.stamp = stamp;
    }
    return item.li;
  });
  // Move only what changed place: an open detail keeps its focus and its typed text.
  lis.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  while (list.children.length > lis.length) list.lastElementChild.remove();
  $("exceptions-count").textContent = String(incidents.open.size);
  $("exceptions-none").hidden = incidents.open.size > 0;
  incidents.onChange();
}

// Open the incident ``id`` (from the SKU drill-down) and bring it into view.
export function showIncident(id) {
  const item = incidents.items.get(id);
  if (item === undefined) return;
  item.expanded = true;
  item.stamp = null;
  render();
  item.li.scrollIntoView({ block: "nearest" });
  item.li.querySelector("button.head")?.focus();
}

// GET /v1/exceptions (open ones) replaces the list; it doubles as the probe of whether the page
// is signed in (404: a daemon without the queue, the feed's records still show).
export async function checkExceptions() {
  const seen = []; // the feed's records while the listing is on its way: newer than it
  incidents.fetching.add(seen);
  try {
    const { status, body } = await api(EXCEPTIONS_PATH);
    incidents.onAuth(status, body?.error);
    if (status !== 200 || body === null) return;
    const records = Array.isArray(body) ? body : (body.items ?? body.exceptions ?? body.open ?? []);
    incidents.open = new Map();
    for (const rec of records) remember(rec);
    for (const rec of seen) remember(rec);
    render();
  } catch {
    // unreachable daemon: the feed's status says so
  } finally {
    incidents.fetching.delete(seen);
  }
}

async function poll() {
  await checkExceptions();
  setTimeout(poll, EVERY_MS);
}

export function startIncidents({ onAuth, onChange }) {
  incidents.onAuth = onAuth;
  incidents.onChange = onChange ?? (() => {});
  render();
  poll();
}
