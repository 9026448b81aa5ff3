// recserve dashboard, Feedback section: events per type per hour and click-through by model
// version, as /dashboard/api/feedback returns them (the event store's hourly counts of every
// replica). Uses the helpers of dashboard.js (loaded first): $, el, card, table, count, call, svg, every.
"use strict";

const FEEDBACK_MS = 30000;
const fbState = { body: null };

function utcHour(seconds) {
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:00`;
}

// CTR and other rates: two decimals of a percent (Number.toFixed, as the browser test expects).
function rate(x) {
  return x === null || x === undefined ? "—" : `${(100 * x).toFixed(2)}%`;
}

function typeClass(types, t) {
  return `t${Math.min(types.indexOf(t), 5)}`;
}

function renderUnavailable(body) {
  fbState.body = null;
  $("fb-warning").textContent = `event store unavailable: ${body.error}`;
  $("fb-warning").hidden = false;
  for (const id of ["fb-cards", "fb-plot", "fb-hours-table", "fb-ctr-table"]) $(id).replaceChildren();
  $("feedback").dataset.at = String(body.now);
  $("feedback").dataset.state = "unavailable";
}

function renderFeedback(body) {
  if (!body.available) {
    renderUnavailable(body);
    return;
  }
  fbState.body = body;
  const section = $("feedback");
  $("fb-warning").hidden = !body.catching_up;
  $("fb-warning").textContent = body.catching_up
    ? `still counting older events (counted up to seq ${body.folded_seq} of ${body.watermark}); refresh to continue`
    : "";
  $("fb-window").textContent = `last ${body.hours} h, ${utcHour(body.from)} – ${utcHour(body.until)} UTC`;
  const serving = body.by_version.find((r) => r.serving);
  const uncredited = Object.values(body.not_credited).reduce(
    (a, per) => a + Object.values(per).reduce((b, n) => b + n, 0), 0);
  $("fb-cards").replaceChildren(
    card("events", count(body.total), body.types.map((t) => `${t} ${count(body.totals[t])}`).join(" · "), "fb-total"),
    card("lists served", count(body.lists_served), "answers with a recomm_id, all replicas", "fb-lists"),
    card(`CTR of the serving version`, rate(serving ? serving.ctr : null),
      serving ? `${count(serving.credited[body.ctr_type])} ${body.ctr_type}s / ${count(serving.lists_served)} lists` : "no list served in the window",
      "fb-serving-ctr"),
    card("not credited", count(uncredited), "events without a recserve recomm_id"),
  );
  drawEventsPlot();

  const withEvents = body.per_hour.filter((h) => h.total > 0).reverse();
  const hourRows = withEvents.map((h) =>
    el("tr", { "data-hour": h.hour }, el("th", { scope: "row", class: "id" }, utcHour(h.hour)),
      ...body.types.map((t) => el("td", { "data-type": t }, count(h.counts[t]))), el("td", { class: "sum" }, count(h.total))));
  hourRows.push(withEvents.length
    ? el("tr", { class: "total", "data-hour": "total" }, el("th", { scope: "row" }, "total"),
      ...body.types.map((t) => el("td", { "data-type": t }, count(body.totals[t]))), el("td", { class: "sum" }, count(body.total)))
    : el("tr", {}, el("td", { colspan: body.types.length + 2, class: "muted" }, "no events in this window")));
  table($("fb-hours-table"), ["hour (UTC)", ...body.types, "all"], hourRows);

  const versionRows = body.by_version.map((r) => {
    const label = r.model_version === null ? `${r.versions} other versions` : r.model_version;
    return el("tr", { "data-version": r.model_version === null ? "" : r.model_version, class: r.serving ? "serving-row" : null },
      el("td", { class: "marks" }, r.serving ? el("span", { class: "pill live" }, "serving") : null),
      el("td", { class: "id" }, label),
      el("td", { class: "lists" }, count(r.lists_served)),
      ...body.types.map((t) => el("td", { "data-type": t, title: rate(r.rates[t]) }, count(r.credited[t]))),
      el("td", { class: "ctr", "data-ctr": r.ctr === null ? "" : String(r.ctr) }, rate(r.ctr)));
  });
  if (!versionRows.length) {
    versionRows.push(el("tr", {}, el("td", { colspan: body.types.length + 4, class: "muted" }, "no lists served and no credited events in this window")));
  }
  table($("fb-ctr-table"), ["", "version", "lists served", ...body.types.map((t) => `${t}s`), `CTR (${body.ctr_type})`], versionRows);
  $("fb-definition").textContent = body.definition;
  section.dataset.at = String(body.now);
  section.dataset.state = "done";
}

function drawEventsPlot() {
  const body = fbState.body;
  const box = $("fb-plot");
  if (!body) return;
  const W = Math.max(280, box.clientWidth || 600);
  const H = W < 500 ? 170 : 200;
  const pad = { l: 44, r: 8, t: 10, b: 24 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart" });
  const hours = body.per_hour;
  const step = Math.max(1, Math.ceil(Math.max(...hours.map((h) => h.total)) / 4));  // whole-event ticks
  const yMax = 4 * step;
  const slot = (W - pad.l - pad.r) / Math.max(1, hours.length);
  const y = (v) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, v));
  }
  hours.forEach((h, i) => {
    let base = 0;
    for (const t of body.types) {
      const n = h.counts[t];
      if (!n) continue;
      root.append(svg("rect", { x: pad.l + i * slot + slot * 0.1, width: Math.max(1, slot * 0.8), y: y(base + n),
        height: Math.max(0.5, y(base) - y(base + n)), class: `bar ${typeClass(body.types, t)}` }));
      base += n;
    }
  });
  const every_ = Math.ceil(hours.length / (W < 500 ? 4 : 8));
  hours.forEach((h, i) => {
    const lastOne = i === hours.length - 1;
    if (i % every_ === 0 || lastOne) {
      root.append(svg("text", { x: pad.l + (i + 0.5) * slot, y: H - 8, "text-anchor": lastOne ? "end" : "middle", class: "tick" },
        utcHour(h.hour).slice(6)));
    }
  });
  const legend = el("div", { class: "legend-row" },
    ...body.types.map((t) => el("span", {}, el("span", { class: `swatch ${typeClass(body.types, t)}` }), t)));
  box.replaceChildren(legend, root);
}

async function refreshFeedback() {
  const section = $("feedback");
  try {
    renderFeedback(await call(`/dashboard/api/feedback?hours=${encodeURIComponent($("fb-hours").value)}`));
  } catch (err) {
    $("fb-warning").textContent = `could not read the feedback counts: ${err.message}`;
    $("fb-warning").hidden = false;
    section.dataset.state = "error";
  }
}

$("fb-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  refreshFeedback();
});
$("fb-hours").addEventListener("change", refreshFeedback);
$("key-box").addEventListener("submit", () => refreshFeedback());
window.addEventListener("resize", drawEventsPlot);
every(refreshFeedback, FEEDBACK_MS);
