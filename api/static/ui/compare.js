// The compare view (#/compare/1,2,3): several jobs' loss curves on one chart and
// their specs side by side, the rows that differ marked; and the checkboxes of the
// jobs list that pick the jobs. Loaded before app.js: it only defines functions,
// which use app.js's helpers (api, el, fmt, view, stopCurrent) when called.
"use strict";

const COMPARE_MAX = 12;
const COMPARE_POINTS = 2000;
// Told apart on a white background and by most colour-blind readers (Okabe and Ito).
const COMPARE_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
  "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd"];

// Jobs ticked on the jobs list; kept while its rows are redrawn, emptied on entering it.
const compareSelection = new Set();
let compareButton = null;

// The Compare button above the jobs list; enabled once two jobs are ticked.
function compareBar() {
  compareSelection.clear();
  compareButton = el("button", { id: "compare", type: "button", disabled: "" }, "Compare");
  compareButton.addEventListener("click", () => {
    const ids = [...compareSelection].sort((a, b) => a - b);
    location.hash = `#/compare/${ids.join(",")}`;
  });
  return el("p", { class: "toolbar" }, compareButton, " ",
    el("small", {}, `Tick two to ${COMPARE_MAX} jobs to compare their curves and specs.`));
}

function updateCompareButton() {
  const n = compareSelection.size;
  compareButton.disabled = n < 2 || n > COMPARE_MAX;
  compareButton.textContent = n ? `Compare (${n})` : "Compare";
}

// Adds a checkbox cell in front of each row of the jobs table (rows carry data-job).
function selectableRows(table) {
  for (const row of table.rows) {
    if (!row.dataset.job) { row.prepend(el("th", { class: "pick" }, "")); continue; }
    const id = Number(row.dataset.job);
    const box = el("input", { type: "checkbox", class: "pick", "aria-label": `compare job #${id}` });
    box.checked = compareSelection.has(id);
    box.addEventListener("change", () => {
      if (box.checked) compareSelection.add(id); else compareSelection.delete(id);
      updateCompareButton();
    });
    row.prepend(el("td", { class: "pick" }, box));
  }
  updateCompareButton();
}

// The jobs (GET /jobs/<id> shapes) in the order of `ids`, each with its spec's
// `network` and `training` when `withSpecs`: one batch GET /jobs?ids=... (which
// carries the specs), or from an API without that parameter (a 422 naming it) one
// GET /jobs/<id> per job and its GET /jobs/<id>/spec.
async function jobSummaries(ids, withSpecs = false) {
  try {
    const { jobs } = await api(`/jobs?ids=${ids.join(",")}`);
    const byId = new Map(jobs.map((job) => [job.id, job]));
    const found = ids.map((id) => byId.get(id));
    if (found.every((job) => job && (!withSpecs || (job.network && job.training)))) return found;
  } catch (error) {
    if (error.status !== 422) throw error;
  }
  return Promise.all(ids.map(async (id) => {
    const [job, spec] = await Promise.all([api(`/jobs/${id}`), withSpecs ? api(`/jobs/${id}/spec`) : {}]);
    return { ...job, ...spec };
  }));
}

// A spec as {path: value}: objects by key (a.b), lists of objects by index (a[0]);
// a list of plain values (feature names, given weights) stays one value.
function flatSpec(value, path = "", out = {}) {
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (Array.isArray(value) && value.some(isObject)) {
    value.forEach((item, i) => flatSpec(item, `${path}[${i}]`, out));
  } else if (isObject(value) && Object.keys(value).length) {
    for (const [name, item] of Object.entries(value)) flatSpec(item, path ? `${path}.${name}` : name, out);
  } else {
    out[path] = value;
  }
  return out;
}

function specValue(value) {
  if (value === undefined) return "–";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

// One row per spec path any of the jobs has, one column per job; a row whose values
// are not all the same gets the class "differs" and a ≠ before its path.
function specTable(ids, specs) {
  const flat = specs.map((spec) => flatSpec({ network: spec.network, training: spec.training }));
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  const head = el("tr", {}, el("th", {}, "spec path"), ...ids.map((id) => el("th", {}, el("a", { href: `#/jobs/${id}` }, `#${id}`))));
  const rows = paths.map((path) => {
    const values = flat.map((f) => f[path]);
    const differs = new Set(values.map((v) => (v === undefined ? "\u0000missing" : JSON.stringify(v)))).size > 1;
    return el("tr", { "data-path": path, class: differs ? "differs" : "same" },
      el("th", { class: "path" }, el("span", { class: "marker", "aria-label": differs ? "differs" : "" }, differs ? "≠" : ""), path),
      ...values.map((v) => el("td", { title: v === undefined ? "not set" : JSON.stringify(v) }, specValue(v))));
  });
  return el("table", { id: "spec-diff", class: "compact" }, head, ...rows);
}

function summaryTable(jobs) {
  const head = el("tr", {}, ...["job", "status", "epochs", "loss", "val loss", "stopped", "model"].map((h) => el("th", {}, h)));
  const rows = jobs.map((job, i) => el("tr", { "data-job": job.id },
    el("td", {}, el("span", { class: "swatch", style: `background: ${COMPARE_COLOURS[i % COMPARE_COLOURS.length]}` }), " ",
      el("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    el("td", { class: `status ${job.status}` }, job.status),
    el("td", {}, `${job.epochs_completed} / ${job.epochs_total}`),
    el("td", {}, fmt(job.loss)), el("td", {}, fmt(job.val_loss)),
    el("td", {}, job.stop_reason || "–"),
    el("td", {}, job.model_id ? `#${job.model_id}` : "–")));
  return el("table", { id: "compare-jobs", class: "compact" }, head, ...rows);
}

// Curves [{epochs, values}] on one x axis (uPlot.join fills the epochs one curve
// lacks with null, which spanGaps draws across).
function joinCurves(curves) {
  return uPlot.join(curves.map((c) => [c.epochs, c.values]));
}

function overlayChart(box, series, data, yLabel) {
  box.replaceChildren();
  return new uPlot({
    width: Math.min(1000, view.clientWidth - 40), height: 320,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: "epoch" }, { label: yLabel, size: 70, values: (u, ticks) => ticks.map((v) => (v == null ? "" : Number(v).toPrecision(2))) }],
    series: [{ label: "epoch" }, ...series],
  }, data, box);
}

function parseIds(text) {
  const ids = [...new Set((text || "").split(",").filter((s) => s !== "").map(Number))];
  if (!ids.length || ids.some((id) => !Number.isInteger(id) || id < 1)) {
    throw new Error(`#/compare/ wants job ids separated by commas, such as #/compare/1,2 (got "${text || ""}")`);
  }
  if (ids.length > COMPARE_MAX) throw new Error(`at most ${COMPARE_MAX} jobs at once, got ${ids.length}`);
  return ids;
}

async function comparePage(text) {
  const ids = parseIds(text);
  let stopped = false, timer = null;
  stopCurrent = () => { stopped = true; clearTimeout(timer); };
  const [jobs, curves] = await Promise.all([
    jobSummaries(ids, true),
    Promise.all(ids.map((id) => api(`/jobs/${id}/curve?points=${COMPARE_POINTS}`))),
  ]);
  if (stopped) return;  // left while loading: the next page has the view
  const specs = jobs.map((job) => ({ network: job.network, training: job.training }));
  const jobsBox = el("div", {}, summaryTable(jobs));
  const chartBox = el("div", { id: "compare-chart", "data-series": String(ids.length) });
  const only = el("input", { type: "checkbox", id: "only-differences" });
  const table = specTable(ids, specs);
  only.addEventListener("change", () => table.classList.toggle("only-differences", only.checked));
  view.replaceChildren(el("h1", {}, `Compare jobs ${ids.map((id) => `#${id}`).join(", ")}`),
    el("div", { class: "card" }, jobsBox),
    el("div", { class: "card" }, el("h2", {}, "Training loss"), chartBox),
    el("div", { class: "card wide" }, el("h2", {}, "Specs"),
      el("p", {}, el("label", {}, only, " only the rows that differ"),
        ` · ${table.querySelectorAll("tr.differs").length} of ${table.rows.length - 1} differ`), table));

  const series = ids.map((id, i) => ({ label: `#${id}`, stroke: COMPARE_COLOURS[i % COMPARE_COLOURS.length], width: 2, spanGaps: true }));
  const lossOf = (c) => ({ epochs: c.epochs, values: c.loss });
  const chart = overlayChart(chartBox, series, joinCurves(curves.map(lossOf)), "loss");
  chartBox.dataset.points = String(curves.reduce((n, c) => n + c.epochs.length, 0));

  // Jobs still training: their rows and curves again every few seconds until all end.
  async function poll() {
    if (stopped) return;
    const now = await jobSummaries(ids);
    const fresh = await Promise.all(ids.map((id, i) => (FINISHED.includes(jobs[i].status) ? curves[i]
      : api(`/jobs/${id}/curve?points=${COMPARE_POINTS}`))));
    if (stopped) return;
    now.forEach((job, i) => { jobs[i] = job; curves[i] = fresh[i]; });
    jobsBox.replaceChildren(summaryTable(jobs));
    chart.setData(joinCurves(curves.map(lossOf)));
    chartBox.dataset.points = String(curves.reduce((n, c) => n + c.epochs.length, 0));
    schedule();
  }
  function schedule() {
    if (!stopped && !jobs.every((job) => FINISHED.includes(job.status))) {
      timer = setTimeout(() => poll().catch(() => schedule()), 3000);
    }
  }
  schedule();
}
