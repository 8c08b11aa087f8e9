// datasock's web page (docs/web.rst): nodes, field search, plots through /query, live samples
// from /api/live, a shareable URL and CSV downloads. Plain ES module, no framework; uPlot draws.
import uPlot from "./vendor/uPlot.esm.js";

const PRESETS = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };
const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const COLORS = ["#1f77b4", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#a61e4d", "#5c940d"];
const AUTH_KEY = "datasock.auth";
const THEME_KEY = "datasock.theme";
const MAX_PLOTS = 8;
const MAX_SERIES = 8;

const $ = (id) => document.getElementById(id);

// == state and the URL (#from=now-1h&to=now&p=sim::a,sim::b&p=host::load_1&live=1&sel=0) ==========
const state = { from: "now-15m", to: "now", plots: [[]], live: true, sel: 0 };
const history = [];          // ranges before each zoom (⟲)
const meta = new Map();      // target -> {units, description, type}
const plots = [];            // Plot objects, one per state.plots entry

function readHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (![...q.keys()].length) return false;
  state.from = q.get("from") || "now-15m";
  state.to = q.get("to") || "now";
  const ps = q.getAll("p").map((p) => p.split(",").filter(Boolean).slice(0, MAX_SERIES));
  state.plots = (ps.length ? ps : [[]]).slice(0, MAX_PLOTS);
  state.live = q.get("live") !== "0";
  state.sel = Math.min(Number(q.get("sel") || 0) || 0, state.plots.length - 1);
  return true;
}

function writeHash() {
  const q = new URLSearchParams();
  q.set("from", state.from);
  q.set("to", state.to);
  for (const p of state.plots) q.append("p", p.join(","));
  q.set("live", state.live ? "1" : "0");
  if (state.sel) q.set("sel", String(state.sel));
  const text = "#" + q.toString().replaceAll("%3A", ":").replaceAll("%2C", ",");
  if (location.hash !== text) history_replace(text);
}
function history_replace(text) { window.history.replaceState(null, "", text); }

// a time: "now", "now-15m" (relative) or milliseconds since the epoch / an ISO text (absolute)
function instant(text, now) {
  if (text === "now") return now;
  const m = /^now-(\d+(?:\.\d+)?)([smhdw])$/.exec(text);
  if (m) return now - Number(m[1]) * UNITS[m[2]] * 1000;
  const n = Number(text);
  return Number.isFinite(n) ? n : Date.parse(text);
}
const relative = () => state.to === "now" && state.from.startsWith("now-");
function range() {
  const now = Date.now();
  let a = instant(state.from, now), b = instant(state.to, now);
  if (!Number.isFinite(a) || !Number.isFinite(b) || a >= b) { a = now - 3600e3; b = now; }
  return [a, b];
}

// == HTTP with the bridge's credentials ============================================================
let asking = null;
async function credentials(challenge) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const basic = /^basic/i.test(challenge || "");
      $("login-user-row").hidden = !basic;
      $("login-secret-label").textContent = basic ? "password" : "token";
      const dialog = $("login");
      dialog.addEventListener("close", () => {
        const secret = $("login-secret").value;
        const value = basic ? "Basic " + btoa(`${$("login-user").value}:${secret}`) : "Bearer " + secret;
        sessionStorage.setItem(AUTH_KEY, value);
        $("login-secret").value = "";
        asking = null;
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }
  return asking;
}

async function api(path, options = {}) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const headers = { ...(options.headers || {}) };
    const auth = sessionStorage.getItem(AUTH_KEY);
    if (auth) headers.Authorization = auth;
    const r = await fetch(path, { ...options, headers });
    if (r.status !== 401) return r;
    sessionStorage.removeItem(AUTH_KEY);
    await credentials(r.headers.get("WWW-Authenticate"));
  }
  throw new Error("not signed in");
}
async function apiJSON(path, options) {
  const r = await api(path, options);
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body?.error?.message || `${path}: HTTP ${r.status}`);
  return body;
}

let toastTimer = 0;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

// == nodes and status ==============================================================================
const nodes = new Map();     // name -> {description, fields, listed, last_sample}
function age(seconds) {
  if (seconds == null) return "–";
  if (seconds < 1) return "now";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
function renderNodes() {
  const ul = $("nodes");
  const now = Date.now() / 1000;
  ul.replaceChildren(...[...nodes.entries()].sort().map(([name, n]) => {
    const li = document.createElement("li");
    li.dataset.node = name;
    li.title = `${n.description || ""}${n.fields != null ? ` · ${n.fields} fields` : ""}`;
    const dot = document.createElement("span");
    dot.className = "dot " + (n.listed === false ? "bad" : "ok");
    const label = document.createElement("span");
    label.className = "desc";
    const strong = document.createElement("span");
    strong.className = "name";
    strong.textContent = name;
    label.append(strong, " ", n.description || "");
    const last = document.createElement("span");
    last.className = "age";
    last.textContent = n.last_sample ? age(now - n.last_sample) : "";
    li.append(dot, label, last);
    li.addEventListener("click", () => { $("search").value = name + "::"; search(); });
    return li;
  }));
}
function setNodes(list, replace) {
  if (replace) for (const name of [...nodes.keys()]) if (!list.some((n) => n.name === name)) nodes.delete(name);
  for (const n of list) nodes.set(n.name, { ...(nodes.get(n.name) || {}), ...n });
  renderNodes();
}

function statusRow(dl, label, ok, text, title) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  const dot = document.createElement("span");
  dot.className = "dot " + (ok === true ? "ok" : ok === false ? "bad" : "warn");
  dd.append(dot, text);
  if (title) dd.title = title;
  dl.append(dt, dd);
}
async function refreshStatus() {
  let s;
  try { s = await apiJSON("api/status"); } catch (e) { return; }
  const dl = $("status");
  dl.replaceChildren();
  const now = s.time;
  statusRow(dl, "router", s.router.up, s.router.up ? "connected" : "not connected");
  const ago = (t) => (now - t < 1 ? "just now" : `${age(now - t)} ago`);
  statusRow(dl, "hub", s.hub.up, s.hub.up ? `answered ${ago(s.hub.seen)}` : (s.hub.error || "not seen"),
    s.hub.error || "");
  const listed = s.nodes.filter((n) => n.listed).length;
  statusRow(dl, "nodes", listed > 0, `${listed} listed, ${s.nodes.reduce((a, n) => a + n.fields, 0)} fields`);
  statusRow(dl, "MQTT", s.mqtt.up ? true : null, s.mqtt.up ? `adapter up (node ${s.mqtt.node})` : "adapter not seen");
  const a = s.archive;
  if (!a) statusRow(dl, "archive", null, "no archive node");
  else if (a.error) statusRow(dl, "archive", false, a.error);
  else statusRow(dl, "archive", a.lag != null && a.lag < 7200 ? true : null,
    a.lag == null ? "no data this week" : `newest ${age(a.lag)} old`, a.field ? `newest sample of ${a.field}` : "");
  if (s.live) statusRow(dl, "live", true, `${s.live.clients}/${s.live.max_clients} streams`);
  setNodes(s.nodes, true);
}

// == field search (server side: /api/search) =======================================================
let searchSeq = 0, searchTimer = 0;
function search() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 120);
}
async function runSearch() {
  const seq = ++searchSeq;
  const q = $("search").value;
  let rows;
  try { rows = await apiJSON(`api/search?limit=50&q=${encodeURIComponent(q)}`); } catch (e) { toast(e.message); return; }
  if (seq !== searchSeq) return;
  const ul = $("results");
  const items = rows.map((r) => {
    meta.set(r.target, r);
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.target = r.target;
    li.title = `${r.description || ""} (${r.type})`;
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = r.target;
    const u = document.createElement("span");
    u.className = "u";
    u.textContent = r.units || "";
    const d = document.createElement("div");
    d.className = "d";
    d.textContent = r.description || "";
    li.append(t, u, d);
    const add = () => addTarget(r.target);
    li.addEventListener("click", add);
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") add(); });
    return li;
  });
  if (rows.length >= 50) {
    const li = document.createElement("li");
    li.className = "more";
    li.textContent = "first 50 shown: type more to narrow";
    items.push(li);
  }
  ul.replaceChildren(...items);
}

async function describe(targets) {
  const missing = targets.filter((t) => !meta.has(t));
  await Promise.all(missing.map(async (t) => {
    try {
      const rows = await apiJSON(`api/search?limit=200&q=${encodeURIComponent(t)}`);
      meta.set(t, rows.find((r) => r.target === t) || { target: t, units: "", description: "", type: "number" });
    } catch (e) { /* shown by the plot's own query */ }
  }));
}

// == plots =========================================================================================
const chartHeight = () => (matchMedia("(max-width: 800px)").matches ? 200 : 260);
function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// several series (each [[value, ms], ...], time-ordered) on one time axis (seconds), null where absent
function align(series) {
  const times = new Set();
  for (const s of series) for (const p of s) times.add(p[1]);
  const xs = Float64Array.from(times).sort();
  const index = new Map();
  xs.forEach((t, i) => index.set(t, i));
  const ys = series.map((s) => {
    const y = new Array(xs.length).fill(null);
    for (const [v, t] of s) y[index.get(t)] = number(v);
    return y;
  });
  return [Array.from(xs, (t) => t / 1000), ...ys];
}
// axis and legend numbers: short, and small or huge values (pressures in mbar) in exponent form
function fmt(v) {
  if (v == null) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a < 1e-3 || a >= 1e7 ? v.toExponential(2) : String(Number(v.toPrecision(6)));
}
function number(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;     // strings are not drawn
}

class Plot {
  constructor(index) {
    this.index = index;
    this.el = document.createElement("article");
    this.el.className = "plot";
    this.el.innerHTML = `<div class="plot-head"><div class="title"></div>
      <button type="button" class="csv" title="download what is shown as CSV">CSV</button>
      <button type="button" class="remove" title="remove this plot">✕</button></div>
      <div class="plot-info"></div><div class="chart"><div class="empty">add a field from the search</div></div>`;
    this.chart = this.el.querySelector(".chart");
    this.info = this.el.querySelector(".plot-info");
    this.el.addEventListener("click", () => select(this.index));
    this.el.querySelector(".csv").addEventListener("click", (e) => { e.stopPropagation(); this.csv(); });
    this.el.querySelector(".remove").addEventListener("click", (e) => { e.stopPropagation(); removePlot(this.index); });
    this.u = null;
    this.data = null;
    this.seq = 0;
    this.appended = 0;
    this.width = 0;
    this.points = 0;
    this.maxDataPoints = 0;
  }
  get targets() { return state.plots[this.index] || []; }

  renderTitle() {
    const title = this.el.querySelector(".title");
    title.replaceChildren(...this.targets.map((t, i) => {
      const m = meta.get(t) || {};
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.title = [m.description, m.units && `units: ${m.units}`].filter(Boolean).join(" · ");
      const sw = document.createElement("i");
      sw.style.background = COLORS[i % COLORS.length];
      const x = document.createElement("button");
      x.type = "button";
      x.textContent = "×";
      x.title = `remove ${t}`;
      x.addEventListener("click", (e) => { e.stopPropagation(); removeTarget(this.index, t); });
      chip.append(sw, `${t}${m.units ? ` [${m.units}]` : ""}`, x);
      return chip;
    }));
  }

  plotWidth() { return Math.max(200, Math.floor(this.chart.clientWidth)); }

  build() {
    if (this.u) { this.u.destroy(); this.u = null; }
    this.renderTitle();
    if (!this.targets.length) {
      this.chart.innerHTML = `<div class="empty">add a field from the search</div>`;
      return;
    }
    this.chart.replaceChildren();
    const fg = cssVar("--fg"), grid = cssVar("--grid");
    const units = [...new Set(this.targets.map((t) => meta.get(t)?.units || ""))];
    const scaleOf = (t) => "u:" + (meta.get(t)?.units || "");
    const axes = [{ stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } }];
    units.slice(0, 2).forEach((unit, i) => axes.push({
      scale: "u:" + unit, label: unit || undefined, stroke: fg, side: i ? 1 : 3, size: 70,
      values: (u, splits) => splits.map(fmt),
      grid: { show: i === 0, stroke: grid }, ticks: { stroke: grid },
    }));
    const self = this;
    this.width = this.plotWidth();
    this.u = new uPlot({
      width: this.width, height: chartHeight(),
      scales: { x: { time: true } },
      series: [{}, ...this.targets.map((t, i) => ({
        label: t, scale: scaleOf(t), stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
        value: (u, v) => fmt(v),
        points: { show: false },
      }))],
      axes,
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          zoom(a * 1000, b * 1000);
        }],
        ready: [(u) => u.over.addEventListener("dblclick", (e) => { e.stopPropagation(); unzoom(); })],
      },
    }, this.data && this.data.length === this.targets.length + 1 ? this.data : [[], ...this.targets.map(() => [])],
    this.chart);
    self.chart.dataset.ready = "1";
  }

  async load() {
    if (!this.targets.length) return;
    const seq = ++this.seq;
    const [a, b] = range();
    // one point per pixel of the plot's width (maxDataPoints, as Grafana does)
    const width = this.width || this.plotWidth();
    this.maxDataPoints = width;
    const body = {
      range: { from: new Date(a).toISOString(), to: new Date(b).toISOString(), raw: { from: state.from, to: state.to } },
      maxDataPoints: width, intervalMs: Math.max(1, Math.floor((b - a) / width)),
      targets: this.targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), target: t })),
    };
    this.info.textContent = "loading…";
    let answer, errors = 0;
    try {
      const r = await api("query", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      answer = await r.json();
      if (!r.ok) throw new Error(answer?.error?.message || `HTTP ${r.status}`);
      errors = Number(r.headers.get("X-Datasock-Errors") || 0);
    } catch (e) {
      if (seq === this.seq) this.info.textContent = `query failed: ${e.message}`;
      return;
    }
    if (seq !== this.seq) return;
    const byTarget = new Map(answer.filter((s) => s.datapoints).map((s) => [s.target, s.datapoints]));
    const series = this.targets.map((t) => byTarget.get(t) || []);
    this.data = align(series);
    this.points = Math.max(0, ...series.map((s) => s.length));
    this.appended = 0;
    this.window = [a / 1000, b / 1000];
    this.u.setData(this.data, false);
    this.u.setScale("x", { min: a / 1000, max: b / 1000 });
    this.describeInfo(errors);
  }

  describeInfo(errors = 0) {
    const counts = this.data ? this.data.slice(1).map((y) => y.reduce((n, v) => n + (v != null), 0)) : [];
    const total = counts.reduce((a, b) => a + b, 0);
    const span = this.window ? this.window[1] - this.window[0] : 0;
    this.info.textContent = `${total} points, ${this.maxDataPoints} px wide, ${age(span)} span` +
      (errors ? ` · ${errors} target(s) failed` : "") + (state.live && relative() ? " · live" : "");
  }

  // new samples of one node: {node, t: [s], data: {field: [v]}}
  append(sample) {
    if (!this.u || !this.data) return false;
    const cols = this.targets.map((t) => {
      const [node, field] = splitTarget(t);
      return node === sample.node ? sample.data[field] : undefined;
    });
    if (cols.every((c) => c === undefined)) return false;
    const xs = this.data[0];
    let last = xs.length ? xs[xs.length - 1] : -Infinity;
    sample.t.forEach((t, k) => {
      if (!(t > last)) return;   // older than what is shown: the next re-query has it
      xs.push(t);
      cols.forEach((c, i) => this.data[i + 1].push(c === undefined ? null : number(c[k])));
      last = t;
      this.appended++;
    });
    return true;
  }

  slide() {
    if (!this.u || !this.data) return;
    const [a, b] = range();
    const lo = a / 1000;
    let cut = 0;
    while (cut < this.data[0].length && this.data[0][cut] < lo) cut++;
    if (cut) this.data = this.data.map((col) => col.slice(cut));
    this.window = [lo, b / 1000];
    this.u.setData(this.data, false);
    this.u.setScale("x", { min: lo, max: b / 1000 });
    this.describeInfo();
    // far more points than pixels after a long live stretch: ask again at the right resolution
    if (this.appended > this.maxDataPoints) this.load();
  }

  resize() {
    if (!this.u) return;
    const width = this.plotWidth();
    if (Math.abs(width - this.width) < 2) return;
    this.width = width;
    this.u.setSize({ width, height: chartHeight() });
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.load(), 300);
  }

  async csv() {
    const [a, b] = range();
    const groups = new Map();
    for (const t of this.targets) {
      const [node, field] = splitTarget(t);
      groups.set(node, [...(groups.get(node) || []), field]);
    }
    for (const [node, fields] of groups) {
      const q = new URLSearchParams({ node, field: fields.join(","), from: new Date(a).toISOString(),
        to: new Date(b).toISOString(), format: "csv", max_points: String(this.maxDataPoints || this.plotWidth()) });
      try {
        const r = await api(`api/data?${q}`);
        if (!r.ok) throw new Error((await r.json().catch(() => null))?.error?.message || `HTTP ${r.status}`);
        const blob = await r.blob();
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        const stamp = new Date(a).toISOString().slice(0, 19).replaceAll(":", "");
        link.download = `${node}-${stamp}.csv`;
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      } catch (e) { toast(`CSV of ${node}: ${e.message}`); }
    }
  }
}

function splitTarget(t) {
  const i = t.indexOf("::");
  return i < 0 ? [t, ""] : [t.slice(0, i), t.slice(i + 2)];
}

async function renderPlots() {
  const container = $("plots");
  while (plots.length > state.plots.length) { const p = plots.pop(); p.u?.destroy(); p.el.remove(); }
  while (plots.length < state.plots.length) { const p = new Plot(plots.length); plots.push(p); container.append(p.el); }
  await describe(state.plots.flat());
  plots.forEach((p) => { p.el.classList.toggle("selected", p.index === state.sel && plots.length > 1); p.build(); });
  $("add-plot").disabled = plots.length >= MAX_PLOTS;
  await loadAll();
}
const loadAll = () => Promise.all(plots.map((p) => p.load()));

function select(i) {
  if (state.sel === i) return;
  state.sel = i;
  plots.forEach((p) => p.el.classList.toggle("selected", p.index === i && plots.length > 1));
  writeHash();
}
async function addTarget(target) {
  const list = state.plots[state.sel];
  if (list.includes(target)) return;
  if (list.length >= MAX_SERIES) { toast(`at most ${MAX_SERIES} series per plot: add a plot`); return; }
  list.push(target);
  await viewChanged();
}
async function removeTarget(i, target) {
  state.plots[i] = state.plots[i].filter((t) => t !== target);
  await viewChanged();
}
async function removePlot(i) {
  state.plots.splice(i, 1);
  if (!state.plots.length) state.plots.push([]);
  state.sel = Math.min(state.sel, state.plots.length - 1);
  plots.forEach((p) => { p.u?.destroy(); p.el.remove(); });
  plots.length = 0;
  await viewChanged();
}
async function viewChanged() {
  writeHash();
  syncControls();
  openStream();
  await renderPlots();
}

// == range, zoom =================================================================================
function syncControls() {
  const preset = Object.keys(PRESETS).find((k) => state.from === `now-${k}`);
  const rangeSel = $("range");
  rangeSel.value = state.to === "now" && preset ? `now-${preset}` : "abs";
  $("absolute").hidden = rangeSel.value !== "abs";
  if (rangeSel.value === "abs") {
    const [a, b] = range();
    $("abs-from").value = localInput(a);
    $("abs-to").value = localInput(b);
  }
  $("live").checked = state.live;
  $("live").disabled = !relative();
  $("back").disabled = !history.length;
}
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
async function setRange(from, to, remember) {
  if (remember) history.push([state.from, state.to]);
  state.from = from;
  state.to = to;
  syncControls();
  writeHash();
  openStream();
  await loadAll();
}
function zoom(aMs, bMs) {
  if (!(bMs > aMs)) return;
  return setRange(String(Math.round(aMs)), String(Math.round(bMs)), true);
}
function unzoom() {
  const previous = history.pop();
  if (previous) return setRange(previous[0], previous[1], false);
}

// == live samples: /api/live (server-sent events read through fetch, so the Authorization header goes too) ==
let stream = null;
function openStream() {
  stream?.abort();
  const controller = new AbortController();
  stream = controller;
  const targets = state.live && relative() ? [...new Set(state.plots.flat())] : [];
  const q = new URLSearchParams();
  for (const t of targets) q.append("target", t);
  readStream(`api/live?${q}`, controller.signal).catch(() => {}).finally(() => {
    if (stream === controller && !controller.signal.aborted) setTimeout(() => { if (stream === controller) openStream(); }, 2000);
  });
}
async function readStream(url, signal) {
  const r = await api(url, { signal, headers: { Accept: "text/event-stream" } });
  if (!r.ok || !r.body) throw new Error(`live: HTTP ${r.status}`);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}
let frame = 0;
function onEvent(event, data) {
  if (event === "samples") {
    const node = nodes.get(data.node);
    if (node) { node.last_sample = Date.now() / 1000; }
    let touched = false;
    for (const p of plots) touched = p.append(data) || touched;
    if (touched && !frame) frame = requestAnimationFrame(() => { frame = 0; plots.forEach((p) => p.slide()); });
  } else if (event === "nodes") {
    setNodes(data, true);
    refreshStatus();
  } else if (event === "hello") {
    setNodes(data.nodes, false);
  } else if (event === "gap") {
    loadAll();
  } else if (event === "router") {
    refreshStatus();
  }
}

// == theme =======================================================================================
function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  $("theme").title = `theme: ${theme || "as the system"} (click to change)`;
}
function cycleTheme() {
  const order = ["", "light", "dark"];
  const next = order[(order.indexOf(localStorage.getItem(THEME_KEY) || "") + 1) % order.length];
  if (next) localStorage.setItem(THEME_KEY, next); else localStorage.removeItem(THEME_KEY);
  applyTheme(next);
  plots.forEach((p) => p.build());
}

// == start =======================================================================================
async function main() {
  applyTheme(localStorage.getItem(THEME_KEY) || "");
  if (!readHash()) state.plots = [[]];
  $("range").addEventListener("change", (e) => {
    const v = e.target.value;
    if (v === "abs") {
      const [a, b] = range();
      state.from = String(Math.round(a));
      state.to = String(Math.round(b));
      syncControls();
      writeHash();
      openStream();
    } else setRange(v, "now", false);
  });
  $("abs-apply").addEventListener("click", () => {
    const a = Date.parse($("abs-from").value), b = Date.parse($("abs-to").value);
    if (!(b > a)) { toast("'from' must be before 'to'"); return; }
    setRange(String(a), String(b), true);
  });
  $("back").addEventListener("click", unzoom);
  $("live").addEventListener("change", (e) => { state.live = e.target.checked; writeHash(); openStream(); loadAll(); });
  $("search").addEventListener("input", search);
  $("add-plot").addEventListener("click", () => {
    if (state.plots.length >= MAX_PLOTS) return;
    state.plots.push([]);
    state.sel = state.plots.length - 1;
    viewChanged();
  });
  $("share").addEventListener("click", async () => {
    writeHash();
    try { await navigator.clipboard.writeText(location.href); toast("link copied"); } catch (e) { toast(location.href); }
  });
  $("theme").addEventListener("click", cycleTheme);
  window.addEventListener("hashchange", () => { if (readHash()) { history.length = 0; viewChanged(); } });
  new ResizeObserver(() => plots.forEach((p) => p.resize())).observe($("plots"));
  // the first sight: the sim node's 4 K thermometer, live, when the URL asks for nothing else
  if (!state.plots.flat().length && !location.hash) state.plots = [["sim::thermometer_4k"]];
  syncControls();
  writeHash();
  openStream();
  const first = renderPlots();
  refreshStatus();
  runSearch();
  setInterval(refreshStatus, 10000);
  setInterval(renderNodes, 5000);
  setInterval(() => { if (!(state.live && relative())) return; plots.forEach((p) => p.slide()); }, 1000);
  await first;
  document.body.dataset.ready = "1";
}

// what the browser tests read (tests/integration/test_web_page.py)
window.datasock = {
  state, plots,
  info: () => plots.map((p) => ({ targets: p.targets, points: p.points, maxDataPoints: p.maxDataPoints,
    width: p.width,
    shown: p.data ? p.data[0].length : 0, last: p.data && p.data[0].length ? p.data[0][p.data[0].length - 1] : null,
    scale: p.u ? [p.u.scales.x.min, p.u.scales.x.max] : null })),
};

main().catch((e) => toast(`page failed to start: ${e.message}`));
