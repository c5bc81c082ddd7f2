// Sweeps: the list (#/sweeps) and one sweep (#/sweeps/<id>): its state and best
// trial, a table of its trials, their loss curves on one chart (the best one
// highlighted) and, per searched parameter, the metric against the parameter's
// value. Refreshed every few seconds until the sweep ends. Loaded before app.js:
// it only defines functions, which use app.js's and compare.js's when called.
"use strict";

const SWEEP_REFRESH_MS = 3000;
const TRIAL_POINTS = 500;
// Curves drawn at most: the best trial's and those of the latest trials.
const TRIAL_CURVES = 50;
const BEST_COLOUR = "#d55e00";

async function sweepsPage() {
  let timer = null;
  stopCurrent = () => clearInterval(timer);
  const table = el("table", { id: "sweeps" });
  view.replaceChildren(el("h1", {}, "Sweeps"),
    el("p", {}, "A sweep trains many jobs (trials) over a search space; start one with ",
      el("code", {}, "POST /sweeps"), " or ", el("code", {}, "backprop sweep SPEC.json --dataset N"), "."), table);
  async function refresh() {
    const { sweeps } = await api("/sweeps?limit=100");
    const head = el("tr", {}, ...["sweep", "status", "trials", "metric", "best", "dataset", "created"].map((h) => el("th", {}, h)));
    const rows = sweeps.map((s) => el("tr", { "data-sweep": s.id },
      el("td", {}, el("a", { href: `#/sweeps/${s.id}` }, `#${s.id}`)),
      el("td", { class: `status ${s.status}` }, s.status),
      el("td", {}, String(s.trials_total)),
      el("td", {}, `${s.metric} (${s.direction})`),
      el("td", {}, s.best ? `${num(s.best.value)} (trial ${s.best.trial_number})` : "–"),
      el("td", {}, s.dataset_id ? el("a", { href: `#/datasets/${s.dataset_id}` }, `#${s.dataset_id}`) : "–"),
      el("td", {}, new Date(s.created_at).toLocaleString())));
    table.replaceChildren(head, ...rows);
    if (!rows.length) table.append(el("tr", {}, el("td", { colspan: "7" }, "No sweeps yet.")));
  }
  await refresh();
  // Not if the page was left while the first answer came.
  if (view.contains(table)) timer = setInterval(() => refresh().catch(() => {}), SWEEP_REFRESH_MS);
}

// How a search-space rule spreads its parameter: {"choice": [...]} as categories,
// {"log_uniform" | "int_log_uniform": [lo, hi]} on a log axis, others linear.
function paramScale(rule, values) {
  const [kind, args] = rule && typeof rule === "object" && !Array.isArray(rule) ? Object.entries(rule)[0] || [] : [];
  if (kind === "choice" || Array.isArray(rule)) return { kind: "category", choices: Array.isArray(rule) ? rule : args };
  const numbers = values.every((v) => typeof v === "number");
  if (!numbers) return { kind: "category", choices: [...new Set(values.map((v) => JSON.stringify(v)))].map((v) => JSON.parse(v)) };
  const bounds = Array.isArray(args) && args.length === 2 && args.every((v) => typeof v === "number") ? args : null;
  const log = /log/.test(kind || "") && values.every((v) => v > 0) && (!bounds || bounds[0] > 0);
  return { kind: log ? "log" : "linear", bounds };
}

function ticksOf(lo, hi, log) {
  if (log) {
    const ticks = [];
    for (let e = Math.ceil(Math.log10(lo) - 1e-9); e <= Math.floor(Math.log10(hi) + 1e-9); e++) ticks.push(10 ** e);
    return ticks.length >= 2 ? ticks : [lo, hi];
  }
  // Five to seven round numbers (steps of 1, 2, 2.5 or 5 times a power of ten).
  const raw = (hi - lo) / 6, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

// The metric of each trial with a value against its value of `path`, as SVG. The best
// trial's point is larger and coloured, pruned trials' hollow.
function scatterChart(path, rule, trials, best, metric) {
  const width = 330, height = 230, left = 58, right = 12, top = 10, bottom = 42;
  const points = trials.filter((t) => t.value !== null && t.value !== undefined && path in (t.params || {}));
  const scale = paramScale(rule, points.map((t) => t.params[path]));
  const chart = svg("svg", { class: "scatter", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${metric} against ${path}`, "data-param": path, "data-scale": scale.kind });
  const plotW = width - left - right, plotH = height - top - bottom;
  const ys = points.map((t) => t.value);
  let [yLo, yHi] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (yLo === yHi) { const pad = Math.abs(yLo) * 0.1 || 1; yLo -= pad; yHi += pad; }
  const yPad = (yHi - yLo) * 0.06; yLo -= yPad; yHi += yPad;
  const yAt = (v) => top + plotH - ((v - yLo) / (yHi - yLo)) * plotH;

  let xAt, xTicks;
  if (scale.kind === "category") {
    const keys = scale.choices.map((c) => JSON.stringify(c));
    for (const t of points) if (!keys.includes(JSON.stringify(t.params[path]))) keys.push(JSON.stringify(t.params[path]));
    const band = plotW / keys.length;
    // Trials on one choice are spread a little across its band, so that they do not hide each other.
    xAt = (v, t) => left + band * (keys.indexOf(JSON.stringify(v)) + 0.5) + band * 0.3 * (((t.number * 0.618) % 1) - 0.5);
    xTicks = keys.map((k, i) => [left + band * (i + 0.5), typeof JSON.parse(k) === "string" ? JSON.parse(k) : k]);
  } else {
    const xs = points.map((t) => t.params[path]);
    let [lo, hi] = scale.bounds ? [Math.min(scale.bounds[0], ...xs), Math.max(scale.bounds[1], ...xs)]
      : xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
    if (lo === hi) { lo = scale.kind === "log" ? lo / 2 : lo - 1; hi = scale.kind === "log" ? hi * 2 : hi + 1; }
    const f = scale.kind === "log" ? Math.log10 : (v) => v;
    xAt = (v) => left + ((f(v) - f(lo)) / (f(hi) - f(lo))) * plotW;
    const label = (v) => (scale.kind === "log" && v < 1e-3 ? v.toExponential(0) : num(v));
    xTicks = ticksOf(lo, hi, scale.kind === "log").map((v) => [xAt(v), label(v)]);
  }

  chart.append(svg("rect", { class: "frame", x: left, y: top, width: plotW, height: plotH }));
  for (const [x, label] of xTicks) {
    chart.append(svg("line", { class: "tick", x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4 }),
      svg("text", { x, y: top + plotH + 16, "text-anchor": "middle" }, String(label)));
  }
  for (const v of ticksOf(yLo, yHi, false)) {
    chart.append(svg("line", { class: "tick", x1: left - 4, x2: left, y1: yAt(v), y2: yAt(v) }),
      svg("text", { x: left - 6, y: yAt(v) + 4, "text-anchor": "end" }, num(v)));
  }
  chart.append(svg("text", { class: "label", x: left + plotW / 2, y: height - 6, "text-anchor": "middle" },
    `${path}${scale.kind === "log" ? " (log)" : ""}`));
  // The best point last, so that it is drawn above the others.
  const ordered = [...points].sort((a, b) => (a.job_id === best) - (b.job_id === best));
  for (const t of ordered) {
    const isBest = t.job_id === best;
    chart.append(svg("circle", { cx: xAt(t.params[path], t).toFixed(1), cy: yAt(t.value).toFixed(1), r: isBest ? 6 : 4,
      class: `trial ${t.state}${isBest ? " best" : ""}`, "data-trial": t.number },
    svg("title", {}, `trial ${t.number} (#${t.job_id}): ${path} = ${JSON.stringify(t.params[path])}, ${metric} ${num(t.value)}${isBest ? " (best)" : ""}`)));
  }
  return el("figure", { class: "scatter" }, chart, el("figcaption", {}, `${metric} by ${path}`));
}

// A drawn float to 4 significant digits (the full value is the cell's title).
function paramText(params, path) {
  if (!params || !(path in params)) return "–";
  const v = params[path];
  return typeof v === "number" && !Number.isInteger(v) ? num(v) : specValue(v);
}

function trialsTable(sweep) {
  const paths = Object.keys(sweep.search_space || {});
  const bestJob = sweep.best?.job_id;
  const head = el("tr", {}, ...["trial", "job", "state", sweep.metric, "epochs", "stopped", ...paths].map((h) => el("th", {}, h)));
  const rows = sweep.trials.map((t) => el("tr", { "data-trial": t.number, "data-job": t.job_id,
    class: `${t.state}${t.job_id === bestJob ? " best" : ""}` },
  el("td", {}, String(t.number), t.job_id === bestJob ? el("span", { class: "best-mark", title: "best trial" }, " ★") : ""),
  el("td", {}, el("a", { href: `#/jobs/${t.job_id}` }, `#${t.job_id}`)),
  el("td", { class: "state" }, t.state),
  el("td", { class: "value" }, num(t.value)),
  el("td", {}, String(t.epochs_completed)),
  el("td", {}, t.stop_reason || "–"),
  ...paths.map((p) => el("td", { class: "param", title: JSON.stringify(t.params?.[p]) ?? "" }, paramText(t.params, p)))));
  return el("table", { id: "trials", class: "compact" }, head, ...rows);
}

function sweepHeader(sweep) {
  const b = sweep.best;
  const best = b ? el("span", { id: "sweep-best" }, `${num(b.value)} — trial ${b.trial_number}, job `,
    el("a", { href: `#/jobs/${b.job_id}` }, `#${b.job_id}`), b.model_id ? `, model #${b.model_id}` : "")
    : el("span", { id: "sweep-best" }, "none yet");
  const done = sweep.trials.filter((t) => !["running", "waiting"].includes(t.state)).length;
  const fact = (label, value, id) => el("div", {}, el("dt", {}, label), el("dd", id ? { id } : {}, value));
  return el("dl", { class: "facts" },
    fact("metric", `${sweep.metric} (${sweep.direction})`, "sweep-metric"),
    fact("best", best),
    fact("trials", `${done} of ${sweep.trials_total} ended · ${sweep.parallel} at once`, "sweep-trials"),
    fact("sampler · pruner", `${sweep.sampler} · ${sweep.pruner}`),
    fact("dataset", sweep.dataset_id ? el("a", { href: `#/datasets/${sweep.dataset_id}` }, `#${sweep.dataset_id}`) : "–"),
    fact("created", new Date(sweep.created_at).toLocaleString()),
    fact("finished", sweep.finished_at ? new Date(sweep.finished_at).toLocaleString() : "–"));
}

// A link to the compare view of the best complete trials (up to five), best first.
function compareBest(sweep) {
  const sign = sweep.direction === "maximize" ? -1 : 1;
  const ranked = sweep.trials.filter((t) => t.state === "complete" && t.value !== null)
    .sort((a, b) => sign * (a.value - b.value) || a.number - b.number).slice(0, 5);
  if (ranked.length < 2) return "";
  return el("p", {}, el("a", { id: "compare-best", href: `#/compare/${ranked.map((t) => t.job_id).join(",")}` },
    `Compare the best ${ranked.length} complete trials`), " (curves and specs side by side)");
}

// Calls fn on each item, at most `limit` at once, in order.
async function eachLimited(items, limit, fn) {
  const queue = [...items];
  const runners = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await fn(queue.shift());
  });
  await Promise.all(runners);
}

async function sweepPage(id) {
  let stopped = false, timer = null;
  stopCurrent = () => { stopped = true; clearTimeout(timer); };
  const status = el("span", { id: "status", class: "status" });
  const cancel = el("button", { id: "cancel-sweep", type: "button", hidden: "" }, "Cancel sweep");
  const note = el("p", { id: "sweep-note" });
  const header = el("div", { class: "card", id: "sweep-header" });
  const chartBox = el("div", { id: "sweep-chart", "data-series": "0" });
  const chartNote = el("p", { class: "hint" });
  const chartTitle = el("h2", {}, "Loss of the trials");
  const scatterBox = el("div", { id: "sweep-params", class: "scatters" });
  const tableBox = el("div", { class: "card wide" });
  view.replaceChildren(el("h1", {}, `Sweep #${id} `, status, " ", cancel), note, header,
    el("div", { class: "card" }, chartTitle, chartBox, chartNote),
    el("div", { class: "card" }, el("h2", {}, "Parameters"), scatterBox),
    tableBox);

  // The trial jobs' curves by job id; `final` once read after the job ended.
  const curves = new Map();
  let chart = null, chartKey = "";

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`/sweeps/${id}/cancel`, { method: "POST" });
      cancel.textContent = "Cancelling…";
      await refresh();
    } catch (error) {
      note.textContent = `could not cancel: ${error.full || error.message}`;
      note.className = "error";
      cancel.disabled = false;
    }
  });

  async function drawCurves(sweep) {
    const field = sweep.metric === "val_loss" ? "val_loss" : "loss";
    const best = sweep.best?.job_id;
    const started = sweep.trials.filter((t) => t.job_id && (t.epochs_completed > 0 || curves.has(t.job_id)));
    const shown = [...started.filter((t) => t.job_id !== best).slice(-(TRIAL_CURVES - 1)),
      ...started.filter((t) => t.job_id === best)];
    const stale = shown.filter((t) => !curves.get(t.job_id)?.final);
    await eachLimited(stale, 4, async (t) => {
      const ended = FINISHED.includes(t.status);
      const curve = await api(`/jobs/${t.job_id}/curve?points=${TRIAL_POINTS}`);
      curves.set(t.job_id, { curve, final: ended });
    });
    if (stopped) return;
    const drawn = shown.filter((t) => curves.get(t.job_id)?.curve.epochs.length);
    chartTitle.textContent = field === "val_loss" ? "Validation loss of the trials" : "Training loss of the trials";
    chartNote.textContent = started.length > shown.length ? `The best trial and the latest ${shown.length - 1} of ${started.length}.` : "";
    if (!drawn.length) {
      chart?.destroy(); chart = null; chartKey = "";
      chartBox.replaceChildren(el("p", {}, "No epochs yet."));
      chartBox.dataset.series = "0";
      return;
    }
    const data = uPlot.join(drawn.map((t) => { const c = curves.get(t.job_id).curve; return [c.epochs, c[field]]; }));
    const key = `${field}|${best}|${drawn.map((t) => t.job_id).join(",")}`;
    if (key === chartKey) { chart.setData(data); return; }
    chart?.destroy();
    const series = drawn.map((t) => (t.job_id === best
      ? { label: `trial ${t.number} (#${t.job_id}) best`, stroke: BEST_COLOUR, width: 3, spanGaps: true }
      : { label: `trial ${t.number} (#${t.job_id})`, stroke: t.state === "pruned" ? "#c4c8cf" : "#8a8f99", width: 1, spanGaps: true,
        dash: t.state === "pruned" ? [4, 3] : undefined }));
    chart = overlayChart(chartBox, series, data, field === "val_loss" ? "validation loss" : "loss");
    chartKey = key;
    chartBox.dataset.series = String(drawn.length);
    chartBox.dataset.best = best ? String(best) : "";
  }

  async function refresh() {
    const sweep = await api(`/sweeps/${id}`);
    if (stopped) return null;
    status.textContent = sweep.status;
    status.className = `status ${sweep.status}`;
    const running = !FINISHED.includes(sweep.status);
    cancel.hidden = !running;
    if (sweep.cancel_requested) { cancel.disabled = true; cancel.textContent = "Cancelling…"; }
    if (!sweep.error && note.className !== "error") note.textContent = "";
    if (sweep.error) { note.textContent = sweep.error; note.className = "error"; }
    header.replaceChildren(sweepHeader(sweep));
    tableBox.replaceChildren(el("h2", {}, `Trials (${sweep.trials.length})`), compareBest(sweep), trialsTable(sweep));
    const paths = Object.keys(sweep.search_space || {});
    scatterBox.replaceChildren(...paths.map((p) => scatterChart(p, sweep.search_space[p], sweep.trials, sweep.best?.job_id, sweep.metric)));
    await drawCurves(sweep);
    return sweep;
  }

  function schedule(sweep) {
    if (stopped || (sweep && FINISHED.includes(sweep.status))) return;
    timer = setTimeout(async () => {
      let sweep = null;
      try { sweep = await refresh(); } catch (error) {
        if (stopped || error.message === "unauthorized") return;
        note.textContent = `live updates paused: ${error.full || error.message}`;
      }
      schedule(sweep);
    }, SWEEP_REFRESH_MS);
  }
  schedule(await refresh());
}
