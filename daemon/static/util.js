// Small helpers shared by the console's modules: DOM building (text only, never HTML strings),
// same-origin JSON requests with the session cookie, and times written as ISO-8601 with a zone.

export const $ = (id) => document.getElementById(id);

// el("td", {class: "x", data: {sku: "A"}, title: "t"}, "text", child, ...): a new element.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    else if (key === "on") for (const [k, v] of Object.entries(value)) node.addEventListener(k, v);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// fetch() of a JSON endpoint of the daemon: {status, body} (body null when not JSON). The
// session cookie goes along (same origin); a body is sent as application/json, which the daemon
// requires of every /v1 request that has one.
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  return { status: response.status, body: parsed };
}

// "2026-12-03T21:05:03+01:00": local time with its offset, so a reader knows which zone it is.
export function isoTime(ms) {
  if (ms === undefined || ms === null || Number.isNaN(Number(ms))) return "–";
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, "0");
  const offset = -d.getTimezoneOffset();
  const zone = `${offset >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

// "12 s ago", "4 min ago", "3 h ago".
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// A <time> element: ISO with zone as its text and datetime, how long ago as its title.
export function timeEl(ms) {
  if (ms === undefined || ms === null) return el("span", { class: "muted" }, "never");
  const text = isoTime(ms);
  return el("time", { datetime: text, title: ago(ms), data: { ms: String(ms) } }, text);
}

export function fmtSeconds(s) {
  if (s < 1) return `${Math.max(1, Math.round(s * 1000))} ms`;
  return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
}
