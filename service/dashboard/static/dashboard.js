// recserve dashboard: plain DOM, no framework, no build step, nothing fetched from elsewhere.
// Every number shown comes from this service: /dashboard/api/* for context, and the real
// /recommend and /similar-items endpoints for the "try it" answers.
"use strict";

const LIVE_MS = 2000;
const MODEL_MS = 15000;
const KEY = "recserve-api-key";
const METHOD_LABELS = {
  popularity: "popularity",
  retrieval: "retrieval (MF → HNSW)",
  two_stage: "two-stage (+ ranker)",
};

// ---------------------------------------------------------------------------------------------
// small helpers

function $(id) {
  return document.getElementById(id);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmt(x, digits) {
  return x === null || x === undefined || Number.isNaN(x) ? "—" : Number(x).toFixed(digits);
}

function ms(x) {
  return x === null || x === undefined ? "—" : `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
}

function pct(x) {
  return x === null || x === undefined ? "—" : `${(100 * x).toFixed(x > 0 && x < 0.001 ? 3 : 1)}%`;
}

function count(x) {
  return x === null || x === undefined ? "—" : Math.round(x).toLocaleString("en-US");
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.round(s / 86400)} d`;
}

function attrs(a) {
  if (!a) return "";
  return Object.entries(a)
    .map(([k, v]) => `${k}: ${v.join(", ")}`)
    .join("; ");
}

function table(node, head, rows) {
  node.replaceChildren(
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows),
  );
  node.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// HTTP: every call carries the API key when one was given; a 401 asks for it.

class HttpError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
  }
}

async function call(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const key = sessionStorage.getItem(KEY);
  if (key) opts.headers["X-API-Key"] = key;
  const resp = await fetch(path, opts);
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (resp.status === 401) $("key-box").hidden = false;
  if (!resp.ok) throw new HttpError(resp.status, body);
  return body;
}

$("key-box").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("key-input").value);
  $("key-box").hidden = true;
  refreshModel();
  refreshLive();
  loadExamples();
});

// ---------------------------------------------------------------------------------------------
// Model section

const state = { model: null, live: null, examples: null };

function card(label, value, sub, id) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, value),
    sub ? el("div", { class: "sub" }, sub) : null);
}

function renderModel(m) {
  state.model = m;
  const s = m.serving;
  $("serving-version").textContent = s ? s.version : "none";
  $("ready-pill").textContent = m.status.ready ? "ready" : "not ready";
  $("ready-pill").className = m.status.ready ? "pill ok" : "pill bad";
  const warn = [];
  if (m.store.error) warn.push(`store unreadable: ${m.store.error}`);
  if (s && m.store.current && m.store.current !== s.version)
    warn.push(`store CURRENT is ${m.store.current}, still serving ${s.version} (the poller picks it up within seconds, unless it was refused)`);
  if (m.status.last_error) warn.push(`last refused load (${m.status.last_error_reason}): ${m.status.last_error}`);
  $("model-warning").textContent = warn.join(" · ");
  $("model-warning").hidden = warn.length === 0;

  if (!s) {
    $("model-cards").replaceChildren(card("serving", "no model loaded", "see /readyz"));
  } else {
    const d = s.dims || {};
    $("model-cards").replaceChildren(
      card("live version", s.version, `published ${s.created_at ? s.created_at.slice(0, 19).replace("T", " ") : "?"} UTC`, "model-version"),
      card("age", age(s.age_seconds), s.loaded_at ? `loaded ${age(m.now - s.loaded_at)} ago` : ""),
      card("training data", s.dataset || "?", `${count(s.n_users)} users × ${count(s.n_items)} items, ` +
        `${count(s.n_train_interactions)} interactions` + (s.data_fingerprint ? `; data sha256 ${s.data_fingerprint}…` : "")),
      card("loss", s.loss || "?", `MF dim ${s.embedding_dim ?? d.dim ?? "?"}, ${s.epochs ?? "?"} epochs; ${s.has_ranker ? "ranker on" : "no ranker"}, ${s.serving_n_candidates} candidates`),
    );
    const names = m.metric_names;
    const methods = m.methods.filter((x) => s.metrics[x]);
    const best = Object.fromEntries(names.map((n) => [n, Math.max(...methods.map((x) => s.metrics[x][n] ?? -Infinity))]));
    table($("offline-table"), ["method", ...names], methods.map((x) =>
      el("tr", {}, el("th", { scope: "row" }, METHOD_LABELS[x] || x),
        ...names.map((n) => el("td", { class: s.metrics[x][n] === best[n] ? "best" : null }, fmt(s.metrics[x][n], 4))))));
    const notes = [];
    if (s.candidate_recall !== null && s.candidate_recall !== undefined) notes.push(`candidate recall ${fmt(s.candidate_recall, 4)}`);
    if (s.train_seconds) notes.push(`trained in ${fmt(s.train_seconds, 1)} s`);
    $("offline-notes").textContent = notes.join(" · ");
  }
  renderVersions();
}

function renderVersions() {
  const m = state.model;
  if (!m) return;
  const select = $("metric-select");
  const chosen = select.value || (m.metric_names.includes("ndcg@10") ? "ndcg@10" : m.metric_names[0]);
  select.replaceChildren(...m.metric_names.map((n) => el("option", { value: n, selected: n === chosen }, n)));
  const serving = m.serving ? m.serving.version : null;
  const st = m.store;
  $("store-line").textContent = st.error
    ? `store ${st.uri}: ${st.error}`
    : `store ${st.uri}: ${st.n_versions} version(s), newest ${st.versions.length} shown. ` +
      "CURRENT is what the service loads; previous is what `recserve store rollback` restores.";
  const rows = st.versions.map((v) => {
    const marks = el("td", { class: "marks" });
    if (v.mark === "current") marks.append(el("span", { class: "pill ok" }, "CURRENT"));
    if (v.mark === "previous") marks.append(el("span", { class: "pill" }, "previous"));
    if (v.version === serving) marks.append(el("span", { class: "pill live" }, "serving"));
    if (v.error) {
      return el("tr", { "data-version": v.version }, marks, el("td", { class: "id" }, v.version),
        el("td", { colspan: 6, class: "bad" }, `damaged: ${v.error}`));
    }
    const d = v.dims || {};
    const metric = (x) => (v.metrics[x] ? fmt(v.metrics[x][chosen], 4) : "—");
    return el("tr", { "data-version": v.version, class: v.version === serving ? "serving-row" : null },
      marks, el("td", { class: "id" }, v.version), el("td", {}, age(v.age_seconds)),
      el("td", { class: "small" }, `${v.data_fingerprint ? `${v.data_fingerprint}… ` : ""}(${count(d.n_users)}×${count(d.n_items)})`),
      el("td", {}, v.loss || "?"), el("td", {}, metric("popularity")), el("td", {}, metric("retrieval")),
      el("td", {}, metric("two_stage")));
  });
  table($("versions-table"), ["", "version", "age", "data sha256 (users×items)", "loss", `popularity ${chosen}`,
    `retrieval ${chosen}`, `two-stage ${chosen}`], rows);
}

$("metric-select").addEventListener("change", renderVersions);

async function refreshModel() {
  try {
    renderModel(await call("/dashboard/api/model"));
  } catch (err) {
    $("model-warning").textContent = `could not read the model: ${err.message}`;
    $("model-warning").hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Live section

const ALL = "all API endpoints";

function renderLive(live) {
  state.live = live;
  const rows = live.endpoints;
  const total = rows.find((r) => r.endpoint === ALL) || {};
  const hits = live.cache.reduce((a, c) => a + (c.hit_ratio === null ? 0 : c.hit_ratio * c.window_lookups), 0);
  const lookups = live.cache.reduce((a, c) => a + (c.window_lookups || 0), 0);
  $("live-window").textContent = live.window_seconds ? `last ${Math.round(live.window_seconds)} s, refreshed every 2 s` : "collecting…";
  $("live-cards").replaceChildren(
    card("requests since start", count(total.requests_total), "all API endpoints", "live-total-requests"),
    card("request rate", total.rate === null || total.rate === undefined ? "—" : `${fmt(total.rate, 1)}/s`, ""),
    card("p50 / p99", `${ms(total.p50_ms)} / ${ms(total.p99_ms)}`, "2xx answers"),
    card("errors", pct(total.error_ratio), `5xx; 4xx ${pct(total.client_error_ratio)}`),
    card("cache hits", pct(lookups > 0 ? hits / lookups : null), `${count(lookups)} lookups`),
  );
  table($("live-table"), ["endpoint", "requests", "req/s", "p50", "p99", "5xx", "4xx"], rows.map((r) =>
    el("tr", { "data-endpoint": r.endpoint, class: r.endpoint === ALL ? "total" : null },
      el("th", { scope: "row", class: "id" }, r.endpoint), el("td", { class: "requests" }, count(r.requests_total)),
      el("td", {}, fmt(r.rate, 1)), el("td", {}, ms(r.p50_ms)), el("td", {}, ms(r.p99_ms)),
      el("td", {}, pct(r.error_ratio)), el("td", {}, pct(r.client_error_ratio)))));
  table($("cache-table"), ["cache", "hit ratio (window)", "lookups (window)", "hit ratio (since start)", "lookups"],
    live.cache.length
      ? live.cache.map((c) => el("tr", {}, el("th", { scope: "row" }, c.endpoint), el("td", {}, pct(c.hit_ratio)),
          el("td", {}, count(c.window_lookups)), el("td", {}, pct(c.hit_ratio_total)), el("td", {}, count(c.lookups_total))))
      : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no cache lookups yet"))]);
  const select = $("plot-endpoint");
  const chosen = select.value || ALL;
  select.replaceChildren(...rows.map((r) => el("option", { value: r.endpoint, selected: r.endpoint === chosen }, r.endpoint)));
  drawPlot();
}

$("plot-endpoint").addEventListener("change", drawPlot);
window.addEventListener("resize", drawPlot);

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= x);
}

function drawPlot() {
  const box = $("plot");
  const live = state.live;
  if (!live) return;
  const endpoint = $("plot-endpoint").value || ALL;
  const pts = live.series.map((p) => ({ t: p.t, v: p.endpoints[endpoint] || null }));
  const W = Math.max(280, box.clientWidth || 600);
  const H = W < 500 ? 180 : 220;
  const pad = { l: 52, r: 12, t: 26, b: 26 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart" });
  const values = pts.flatMap((p) => (p.v ? [p.v[1], p.v[2]] : [])).filter((x) => x !== null);
  const yMax = niceMax(Math.max(...values, 0.1));
  const t1 = live.at;
  const t0 = pts.length ? Math.min(pts[0].t, t1 - 60) : t1 - 60;
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`));
  }
  const span = t1 - t0;
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (span * i) / 4;
    root.append(svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" },
      `-${Math.round(t1 - t)} s`));
  }
  for (const [idx, cls] of [[1, "p50"], [2, "p99"]]) {
    let d = "";
    let pen = false;
    for (const p of pts) {
      const v = p.v ? p.v[idx] : null;
      if (v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) root.append(svg("path", { d, class: `line ${cls}` }));
    for (const p of pts) {
      if (p.v && p.v[idx] !== null) root.append(svg("circle", { cx: x(p.t), cy: y(p.v[idx]), r: 2, class: `dot ${cls}` }));
    }
  }
  root.append(svg("text", { x: W - pad.r, y: 13, "text-anchor": "end", class: "legend p99" }, "— p99"));
  root.append(svg("text", { x: W - pad.r - 56, y: 13, "text-anchor": "end", class: "legend p50" }, "— p50"));
  if (!values.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "no answers in this window yet"));
  }
  box.replaceChildren(root);
}

async function refreshLive() {
  try {
    renderLive(await call("/dashboard/api/live"));
  } catch (err) {
    $("live-window").textContent = `could not read live metrics: ${err.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Try it

function exampleLinks(node, ids, input, form) {
  node.replaceChildren("examples: ");
  ids.forEach((id, i) => {
    const a = el("a", { href: "#", "data-id": id }, id);
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      $(input).value = id;
      $(form).requestSubmit();
    });
    node.append(a, i < ids.length - 1 ? " · " : "");
  });
}

async function loadExamples() {
  try {
    const ex = await call("/dashboard/api/examples");
    state.examples = ex;
    $("example-users").replaceChildren(...ex.users.map((u) => el("option", { value: u })));
    $("example-items").replaceChildren(...ex.items.map((i) => el("option", { value: i })));
    exampleLinks($("user-examples"), ex.users, "rec-user", "rec-form");
    exampleLinks($("item-examples"), ex.items, "sim-item", "sim-form");
    if (!$("rec-user").value && ex.users.length) $("rec-user").value = ex.users[0];
    if (!$("sim-item").value && ex.items.length) $("sim-item").value = ex.items[0];
    const names = Object.keys(ex.attributes);
    $("filter-attr").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    fillFilterValues();
  } catch (err) {
    $("user-examples").textContent = `examples unavailable: ${err.message}`;
  }
}

function fillFilterValues() {
  const ex = state.examples;
  const name = $("filter-attr").value;
  const values = ex && name ? ex.attributes[name] : [];
  $("filter-values").replaceChildren(...values.map((v) => el("option", { value: v }, v)));
}

$("filter-attr").addEventListener("change", fillFilterValues);

function recommendBody() {
  const body = { user_id: $("rec-user").value.trim(), exclude_seen: $("rec-exclude-seen").checked };
  const k = $("rec-k").value;
  if (k !== "") body.k = Number(k);
  body.diversity = Number($("rec-diversity").value || 0);
  body.explain = $("rec-explain").checked;
  const mode = $("filter-mode").value;
  const values = Array.from($("filter-values").selectedOptions).map((o) => o.value);
  if (mode && $("filter-attr").value && values.length) {
    body.item_filter = { [mode]: { [$("filter-attr").value]: values } };
  }
  return body;
}

function curlFor(method, path, body) {
  const origin = window.location.origin;
  if (method === "GET") return `curl '${origin}${path}'`;
  return `curl -X POST '${origin}${path}' -H 'content-type: application/json' -d '${JSON.stringify(body)}'`;
}

async function decorate(ids) {
  if (!ids.length) return {};
  try {
    const q = ids.map((i) => `item_id=${encodeURIComponent(i)}`).join("&");
    return (await call(`/dashboard/api/items?${q}`)).items;
  } catch (_) {
    return {};
  }
}

function itemRows(items, info, withReason) {
  return items.map((it, i) => {
    const cells = [
      el("td", {}, i + 1),
      el("td", { class: "id item-id" }, it.item_id),
      el("td", { class: "score", "data-score": String(it.score), title: String(it.score) }, fmt(it.score, 4)),
      el("td", { class: "small" }, attrs(info[it.item_id] && info[it.item_id].attributes)),
    ];
    if (withReason) cells.push(el("td", { class: "small" }, it.reason ? it.reason.text : ""));
    return el("tr", { "data-item-id": it.item_id }, ...cells);
  });
}

function showResult(prefix, state_, message) {
  $(`${prefix}-result`).dataset.state = state_;
  $(`${prefix}-notes`).textContent = message || "";
}

async function recommend(ev) {
  ev.preventDefault();
  const body = recommendBody();
  const result = $("rec-result");
  result.dataset.state = "loading";
  result.dataset.request = JSON.stringify(body);
  $("rec-request").hidden = false;
  $("rec-request").textContent = `POST /recommend ${JSON.stringify(body)}\n${curlFor("POST", "/recommend", body)}`;
  loadHistory(body.user_id);
  try {
    const answer = await call("/recommend", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const info = await decorate(answer.items.map((i) => i.item_id));
    $("rec-empty").hidden = true;
    table($("rec-table"), ["#", "item", "score", "attributes", ...(body.explain ? ["reason"] : [])],
      itemRows(answer.items, info, body.explain));
    $("rec-meta").textContent = `${answer.strategy}, ${answer.source}, model ${answer.model_version}`;
    $("rec-raw").textContent = JSON.stringify(answer, null, 1);
    const notes = [...answer.notes];
    if (!answer.complete) notes.unshift("fewer than k items qualified (complete: false)");
    showResult("rec", "done", notes.join(" · "));
  } catch (err) {
    $("rec-table").hidden = true;
    $("rec-empty").hidden = false;
    $("rec-empty").textContent = err.message;
    $("rec-raw").textContent = err.body ? JSON.stringify(err.body, null, 1) : "";
    showResult("rec", "error", "");
  }
}

async function loadHistory(userId) {
  try {
    const h = await call(`/dashboard/api/history?user_id=${encodeURIComponent(userId)}&limit=50`);
    const fresh = h.fresh.map((it) =>
      el("tr", { "data-item-id": it.item_id, "data-fresh": it.type, class: "fresh" },
        el("td", { class: "id" }, it.item_id, " ", el("span", { class: "pill live" }, `new ${it.type}`)),
        el("td", { class: "small" }, it.known ? attrs(it.attributes) : "not in this model")));
    const trained = h.items.map((it) =>
      el("tr", { "data-item-id": it.item_id }, el("td", { class: "id" }, it.item_id), el("td", { class: "small" }, attrs(it.attributes))));
    const newer = fresh.length ? `${fresh.length} event(s) since training, then ` : "";
    $("history-meta").textContent = h.known
      ? `${newer}${h.items.length} of ${h.n_items} training items (excluded when exclude seen is on)`
      : `unknown to this model (cold start)${fresh.length ? `; ${fresh.length} event(s) since training` : ""}`;
    if (!fresh.length && !trained.length) {
      $("history-table").hidden = true;
      return;
    }
    table($("history-table"), ["item", "attributes"], [...fresh, ...trained]);
  } catch (err) {
    $("history-meta").textContent = err.message;
    $("history-table").hidden = true;
  }
}

async function similar(ev) {
  ev.preventDefault();
  const itemId = $("sim-item").value.trim();
  const k = $("sim-k").value;
  const path = `/similar-items?item_id=${encodeURIComponent(itemId)}${k !== "" ? `&k=${Number(k)}` : ""}`;
  const result = $("sim-result");
  result.dataset.state = "loading";
  result.dataset.request = path;
  $("sim-request").hidden = false;
  $("sim-request").textContent = `GET ${path}\n${curlFor("GET", path)}`;
  try {
    const answer = await call(path);
    const info = await decorate(answer.items.map((i) => i.item_id));
    table($("sim-table"), ["#", "item", "score", "attributes"], itemRows(answer.items, info, false));
    showResult("sim", "done", [`model ${answer.model_version}, ${answer.source}`, ...answer.notes].join(" · "));
  } catch (err) {
    $("sim-table").hidden = true;
    showResult("sim", "error", err.message);
  }
}

$("rec-form").addEventListener("submit", recommend);
$("sim-form").addEventListener("submit", similar);

// ---------------------------------------------------------------------------------------------
// refresh loops (paused while the tab is hidden)

function every(fn, period) {
  const tick = async () => {
    if (!document.hidden) await fn();
    setTimeout(tick, period);
  };
  tick();
}

every(refreshModel, MODEL_MS);
every(refreshLive, LIVE_MS);
loadExamples();
