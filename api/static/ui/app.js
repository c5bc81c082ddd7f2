// The dashboard: jobs, a live loss curve per job, datasets (upload, profile,
// train), held-out scores, predictions.
// Everything it shows comes from the authenticated API with the key kept in
// localStorage; EventSource cannot send that header, so the job stream is read
// with fetch() and parsed here.
"use strict";

const view = document.getElementById("view");
let stopCurrent = () => {};
// Why the last key was refused, shown above the key form.
let keyProblem = null;
const FINISHED = ["succeeded", "failed", "cancelled"];

function key() { return localStorage.getItem("backprop-key"); }

// A 401 means the key itself is wrong: forget it and ask again, saying why.
async function refused(response) {
  const body = await response.json().catch(() => null);
  keyProblem = `The API refused this key (401 ${body?.error?.code || "unauthorized"}): `
    + `${body?.error?.message || response.statusText}. Paste a valid key.`;
  localStorage.removeItem("backprop-key");
  route();
  return new Error("unauthorized");
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${key()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw await refused(response);
  const body = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response, body);
  return body;
}

// An error answer of the API: {"error": {"code", "message", "field"}}, or a bare status
// when something else (a proxy) answered.
class ApiError extends Error {
  constructor(response, body) {
    super(body?.error?.message || response.statusText);
    this.status = response.status;
    this.code = body?.error?.code || "http_error";
    this.field = body?.error?.field || null;
  }
  get full() {
    return `${this.status} ${this.code}: ${this.message}${this.field ? ` (${this.field})` : ""}`;
  }
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function fmt(value) { return value === null || value === undefined ? "–" : Number(value).toPrecision(6); }
// Shorter, for tables of statistics: 4 significant digits, no exponent below a million.
function num(value) {
  if (value === null || value === undefined) return "–";
  const n = Number(value);
  return Math.abs(n) >= 1e6 || (n !== 0 && Math.abs(n) < 1e-3) ? n.toExponential(3) : String(Number(n.toPrecision(4)));
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function askForKey() {
  view.replaceChildren(document.getElementById("key-form").content.cloneNode(true));
  const form = document.getElementById("key");
  if (keyProblem) form.append(el("p", { id: "key-error", class: "error", role: "alert" }, keyProblem));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    keyProblem = null;
    localStorage.setItem("backprop-key", new FormData(event.target).get("key").trim());
    route();
  });
}

async function jobsPage() {
  const table = el("table", { id: "jobs" });
  view.replaceChildren(el("h1", {}, "Jobs"), compareBar(), table);
  async function refresh() {
    const { jobs } = await api("/jobs?limit=100");
    const head = el("tr", {}, ...["job", "status", "epochs", "loss", "val loss", "dataset", "created"].map((h) => el("th", {}, h)));
    const rows = jobs.map((job) => el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
      el("td", { class: `status ${job.status}` }, job.status),
      el("td", {}, `${job.epochs_completed} / ${job.epochs_total}`),
      el("td", {}, fmt(job.loss)), el("td", {}, fmt(job.val_loss)),
      el("td", {}, job.dataset_id ? el("a", { href: `#/datasets/${job.dataset_id}` }, `#${job.dataset_id}`) : "–"),
      el("td", {}, new Date(job.created_at).toLocaleString())));
    table.replaceChildren(head, ...rows);
    selectableRows(table);
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  stopCurrent = () => clearInterval(timer);
}

// lastId: the last epoch the caller has already (the stream sends those after it).
async function* events(path, signal, lastId = "0") {
  while (!signal.aborted) {
    const response = await fetch(path, { signal, headers: { Authorization: `Bearer ${key()}`, "Last-Event-ID": lastId } });
    if (response.status === 401) throw await refused(response);
    if (!response.ok) throw new Error(`stream answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", ended = false;
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const event = {};
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const at = line.indexOf(":");
          event[line.slice(0, at)] = line.slice(at + 1).replace(/^ /, "");
        }
        if (event.id) lastId = event.id;
        if (event.event) {
          const data = JSON.parse(event.data);
          if (event.event === "status" && FINISHED.includes(data.status)) ended = true;
          yield { type: event.event, data };
        }
      }
    }
    if (ended) return;  // the job is over; otherwise the server ended a long stream: go on
  }
}

const CURVE_POINTS = 5000, MAX_POINTS = 10000;

// Thins aligned series [xs, ys, ...more] in place to at most `points` points, as the
// API thins a curve: each bucket of consecutive points keeps the point of its lowest
// y and the point of its highest (in their order), every kept point a real one, so a
// spike stays visible and no value moves to another x.
function thin(series, points) {
  const [xs, ys] = series;
  const size = Math.ceil(xs.length / Math.floor(points / 2));
  const keep = [];
  for (let from = 0; from < xs.length; from += size) {
    const to = Math.min(from + size, xs.length);
    let low = -1, high = -1;
    for (let i = from; i < to; i++) {
      if (ys[i] === null) continue;
      if (low < 0 || ys[i] < ys[low]) low = i;
      if (high < 0 || ys[i] > ys[high]) high = i;
    }
    if (low < 0) { keep.push(from); continue; }
    keep.push(Math.min(low, high));
    if (high !== low) keep.push(Math.max(low, high));
  }
  series.forEach((values) => values.splice(0, values.length, ...keep.map((i) => values[i])));
}

async function jobPage(id) {
  const job = await api(`/jobs/${id}`);
  const spec = await api(`/jobs/${id}/spec`);
  const status = el("span", { id: "status", class: `status ${job.status}` }, job.status);
  const cancel = el("button", { id: "cancel", type: "button" }, "Cancel job");
  const reason = el("p", { id: "reason" });
  const modelId = el("span", { id: "model-id" }, "–");
  const accuracy = el("span", { id: "val-accuracy" }, "–");
  const chartBox = el("div", { id: "chart", "data-points": "0" });
  const metricsBox = el("div", { id: "metrics-box" });
  const predictBox = el("div", { id: "predict" });
  view.replaceChildren(
    el("h1", {}, `Job #${id} `, status, " ", cancel),
    reason,
    el("p", { id: "facts" }, "model ", modelId, " · validation accuracy ", accuracy),
    el("div", { class: "card" }, el("h2", {}, "Loss"), chartBox),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Network"), el("pre", {}, JSON.stringify(spec.network, null, 2))),
      el("div", { class: "card" }, el("h2", {}, "Training"), el("pre", {}, JSON.stringify(spec.training, null, 2)))),
    metricsBox, predictBox);

  // The curve so far comes thinned (GET /jobs/<id>/curve: at most CURVE_POINTS points,
  // each bucket of epochs as the epochs of its lowest and highest loss), then the stream appends the
  // epochs after it; past MAX_POINTS the chart is thinned again, so a job of a
  // million epochs neither downloads nor draws a million points.
  const curve = await api(`/jobs/${id}/curve?points=${CURVE_POINTS}`);
  const epochs = curve.epochs, loss = curve.loss, valLoss = curve.val_loss;
  const chart = new uPlot({
    width: Math.min(1000, view.clientWidth - 40), height: 320,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: "epoch" }, { label: "loss", size: 70, values: (u, ticks) => ticks.map((v) => (v == null ? "" : Number(v).toPrecision(2))) }],
    series: [{ label: "epoch" }, { label: "loss", stroke: "#1f5fbf", width: 2 }, { label: "val loss", stroke: "#d9730d", width: 2 }],
  }, [epochs, loss, valLoss], chartBox);
  chartBox.dataset.points = String(epochs.length);

  function show(state) {
    status.textContent = state.status;
    status.className = `status ${state.status}`;
    reason.textContent = state.error || (state.stop_reason ? `stopped: ${state.stop_reason}` : "");
    reason.className = state.error ? "error" : "";
    cancel.hidden = FINISHED.includes(state.status);
    cancel.disabled = state.cancel_requested;
    if (state.cancel_requested && !cancel.hidden) cancel.textContent = "Cancelling…";
    if (state.model_id) modelId.textContent = `#${state.model_id}`;
    if (state.model_id && !predictBox.hasChildNodes()) modelPanels(state.model_id, metricsBox, predictBox);
  }
  const controller = new AbortController();
  let polling = null;
  stopCurrent = () => { controller.abort(); clearInterval(polling); };
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const state = await api(`/jobs/${id}/cancel`, { method: "POST" });
      show(state);
      // The stream sends the status after the epochs still pending, which a fast job
      // has many of: ask for the job itself until its worker has stopped it.
      if (!FINISHED.includes(state.status)) {
        polling = setInterval(async () => {
          const now = await api(`/jobs/${id}`).catch(() => null);
          if (controller.signal.aborted || !now) return;
          show(now);
          if (FINISHED.includes(now.status)) clearInterval(polling);
        }, 1000);
      }
    } catch (error) {
      reason.textContent = `could not cancel: ${error.message}`;
      reason.className = "error";
      cancel.disabled = false;
    }
  });
  show(job);
  try {
    for await (const event of events(`/jobs/${id}/events`, controller.signal, String(curve.last_epoch))) {
      if (event.type === "epochs") {
        for (const e of event.data.epochs) { epochs.push(e.epoch); loss.push(e.loss); valLoss.push(e.val_loss); }
        if (epochs.length > MAX_POINTS) thin([epochs, loss, valLoss], CURVE_POINTS);
        const last = event.data.epochs.at(-1);
        // Only classifiers with a validation split have one.
        if (last && last.val_accuracy !== null) accuracy.textContent = fmt(last.val_accuracy);
        chart.setData([epochs, loss, valLoss]);
        chartBox.dataset.points = String(epochs.length);
      } else if (event.type === "status") {
        show(event.data);
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) reason.textContent = `live updates stopped: ${error.message}`;
  }
}

// The finished model's held-out scores (when training.test_split held rows out)
// and a predict form, from one GET /models/<id>.
async function modelPanels(modelId, metricsBox, predictBox) {
  predictBox.replaceChildren(el("p", {}, `Loading model #${modelId}…`));
  let model;
  try { model = await api(`/models/${modelId}`); } catch (error) {
    predictBox.replaceChildren(el("p", { class: "error" }, `model #${modelId}: ${error.message}`));
    return;
  }
  if (model.metrics) metricsBox.replaceChildren(metricsCard(model.metrics));
  predictForm(model, predictBox);
}

function scoreTable(rows) {
  return el("table", { id: "scores", class: "compact" }, ...rows
    .filter(([, , value]) => value !== undefined)
    .map(([key, label, value]) => el("tr", { "data-metric": key }, el("th", {}, label), el("td", {}, num(value)))));
}

// Rows are the true classes and columns the predicted ones, as scikit-learn's
// confusion_matrix has them; the diagonal (right answers) is highlighted.
function confusionTable({ labels, matrix }) {
  const head = el("tr", {}, el("th", { class: "corner" }, "true \\ predicted"), ...labels.map((l) => el("th", {}, l)));
  const rows = matrix.map((counts, i) => el("tr", { "data-class": labels[i] }, el("th", {}, labels[i]),
    ...counts.map((n, j) => el("td", { class: i === j ? "hit" : n ? "miss" : "" }, String(n)))));
  return el("table", { id: "confusion", class: "compact numbers" }, head, ...rows);
}

function metricsCard(m) {
  const card = el("div", { class: "card", id: "metrics", "data-task": m.task });
  const where = `${m.n_samples} ${m.split || "test"} rows held out of training`;
  card.append(el("h2", {}, "Held-out scores"), el("p", { id: "metrics-rows" }, where));
  if (m.task === "classification") {
    card.append(scoreTable([["accuracy", "accuracy", m.accuracy], ["balanced_accuracy", "balanced accuracy", m.balanced_accuracy],
      ["log_loss", "log loss", m.log_loss], ["roc_auc", "ROC AUC", m.roc_auc ?? undefined]]));
    card.append(el("h3", {}, "Confusion matrix"), confusionTable(m.confusion_matrix));
    const head = el("tr", {}, ...["class", "precision", "recall", "F1", "support"].map((h) => el("th", {}, h)));
    card.append(el("h3", {}, "Per class"), el("table", { id: "per-class", class: "compact numbers" }, head,
      ...m.per_class.map((c) => el("tr", {}, el("th", {}, c.class), el("td", {}, num(c.precision)),
        el("td", {}, num(c.recall)), el("td", {}, num(c.f1)), el("td", {}, String(c.support))))));
  } else if (m.task === "regression") {
    card.append(scoreTable([["mae", "MAE", m.mae], ["rmse", "RMSE", m.rmse], ["r2", "R²", m.r2]]));
  } else {
    card.append(scoreTable([["subset_accuracy", "subset accuracy", m.subset_accuracy], ["hamming_loss", "Hamming loss", m.hamming_loss]]));
    const head = el("tr", {}, ...["label", "F1", "support"].map((h) => el("th", {}, h)));
    card.append(el("table", { id: "per-label", class: "compact numbers" }, head,
      ...m.per_label.map((c) => el("tr", {}, el("th", {}, c.label), el("td", {}, num(c.f1)), el("td", {}, String(c.support))))));
  }
  return card;
}

// Starts with one row as wide as the model's input: an object keyed by feature
// name when the model has names, else a list. Lists go as `inputs`, objects as
// `instances`. A model trained on a typed table takes its raw columns: the row
// starts from what its preprocessing fills a missing cell with (the median, or
// the first category), so that it predicts as it stands.
function predictForm(model, box) {
  const modelId = model.id, spec = model.spec;
  const names = spec.feature_names;
  const columns = Object.fromEntries((spec.preprocess?.columns || []).map((c) => [c.name, c]));
  const typical = (name) => {
    const c = columns[name];
    if (!c) return 0;
    return c.kind === "category" ? (c.categories[0] ?? null) : (c.fill ?? 0);
  };
  const row = names ? Object.fromEntries(names.map((name) => [name, typical(name)])) : Array(spec.input_dim).fill(0);
  const input = el("textarea", { rows: "4", id: "predict-input", "data-width": String(spec.input_dim) });
  input.value = JSON.stringify([row]);
  const output = el("pre", { id: "predict-output" });
  const button = el("button", { type: "submit" }, "Predict");
  const help = !names ? `Rows as JSON: lists of ${spec.input_dim} numbers.`
    : spec.preprocess ? `Rows as JSON: objects keyed by ${names.join(", ")} (null for a missing value).`
      : `Rows as JSON: objects keyed by ${names.join(", ")}, or lists of ${spec.input_dim} numbers in that order.`;
  const form = el("form", { class: "card" }, el("h2", {}, `Predict with model #${modelId}`),
    el("p", {}, help), input, button, output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const rows = JSON.parse(input.value);
      const named = Array.isArray(rows) && rows.some((r) => r !== null && typeof r === "object" && !Array.isArray(r));
      const answer = await api(`/models/${modelId}/predict`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(named ? { instances: rows } : { inputs: rows }) });
      output.textContent = JSON.stringify(answer, null, 2);
    } catch (error) { output.textContent = error.full || error.message; }
  });
  box.replaceChildren(form);
}

// The header row of a CSV file, for the target picker: fields split on the
// delimiter, double quotes honoured (a quoted field may hold the delimiter).
function headerNames(text, delimiter) {
  const line = text.replace(/^\uFEFF/, "").split(/\r?\n/, 1)[0];
  const names = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { names.push(field.trim()); field = ""; } else field += c;
  }
  names.push(field.trim());
  return names.filter((name) => name !== "");
}

// The API's own guess when no delimiter is given: the candidate found most often
// in the header outside quotes (ties: the first listed), else a comma.
function guessDelimiter(text) {
  const line = text.split(/\r?\n/, 1)[0].replace(/"[^"]*"/g, "");
  const counts = [",", ";", "\t", "|"].map((c) => [c, line.split(c).length - 1]);
  const [best, most] = counts.reduce((a, b) => (b[1] > a[1] ? b : a));
  return most ? best : ",";
}

function uploadForm() {
  const file = el("input", { type: "file", id: "upload-file", name: "file", accept: ".csv,.tsv,.txt,text/csv", required: "" });
  const name = el("input", { id: "upload-name", name: "name", required: "", placeholder: "penguins" });
  const delimiter = el("input", { id: "upload-delimiter", name: "delimiter", placeholder: "auto", size: "4", maxlength: "1" });
  const decimal = el("input", { id: "upload-decimal", name: "decimal", value: ".", size: "2", maxlength: "1" });
  const charset = el("select", { id: "upload-charset", name: "charset" },
    ...["utf-8", "windows-1252", "iso-8859-1", "utf-16"].map((c) => el("option", { value: c }, c)));
  const target = el("select", { id: "upload-target", name: "target", multiple: "", size: "4", required: "", disabled: "" });
  const task = el("select", { id: "upload-task", name: "task" },
    ...["auto", "classification", "regression", "multilabel"].map((t) => el("option", { value: t }, t)));
  const button = el("button", { type: "submit", id: "upload-submit" }, "Upload");
  const problem = el("p", { id: "upload-error", class: "error", role: "alert" });
  const label = (text, input, hint = "") => el("label", {}, el("span", {}, text), input, hint ? el("small", {}, hint) : "");
  const form = el("form", { id: "upload", class: "card" }, el("h2", {}, "Upload a CSV or TSV file"),
    el("div", { class: "fields" }, label("file", file), label("name", name), label("delimiter", delimiter),
      label("decimal mark", decimal), label("encoding", charset),
      label("target column(s)", target, "Ctrl-click for several"), label("task", task, "auto: from the target's values")),
    button, problem);

  // A .tsv file goes as tab-separated values, whose delimiter is the tab.
  const tabs = () => /\.(tsv|tab)$/i.test(file.files[0]?.name || "");
  async function readHeader() {
    const chosen = file.files[0];
    target.replaceChildren();
    target.disabled = true;
    if (!chosen) return;
    if (!name.value) name.value = chosen.name.replace(/\.[^.]*$/, "");
    delimiter.disabled = tabs();
    if (tabs()) delimiter.value = "";
    delimiter.placeholder = tabs() ? "tab" : "auto";
    // The header is in the first few kilobytes; no need to read a large file whole.
    const head = new TextDecoder(charset.value).decode(await chosen.slice(0, 65536).arrayBuffer());
    const names = headerNames(head, tabs() ? "\t" : delimiter.value || guessDelimiter(head));
    target.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    target.disabled = names.length === 0;
    // The last column is the usual place for the label.
    if (names.length) target.options[names.length - 1].selected = true;
  }
  file.addEventListener("change", () => readHeader().catch((error) => { problem.textContent = error.message; }));
  for (const input of [delimiter, charset]) input.addEventListener("change", () => readHeader().catch(() => {}));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const targets = [...target.selectedOptions].map((o) => o.value);
    if (!targets.length) { problem.textContent = "Pick the target column."; return; }
    const query = new URLSearchParams({ name: name.value.trim(), target: targets.join(",") });
    if (task.value !== "auto") query.set("task", task.value);
    if (!tabs() && delimiter.value) query.set("delimiter", delimiter.value);
    if (decimal.value && decimal.value !== ".") query.set("decimal", decimal.value);
    const type = `${tabs() ? "text/tab-separated-values" : "text/csv"}; charset=${charset.value}`;
    button.disabled = true;
    try {
      const dataset = await api(`/datasets?${query}`, { method: "POST", headers: { "Content-Type": type }, body: file.files[0] });
      location.hash = `#/datasets/${dataset.id}`;
    } catch (error) {
      problem.textContent = error.full || error.message;
    } finally { button.disabled = false; }
  });
  return form;
}

async function datasetsPage() {
  const { datasets } = await api("/datasets?limit=100");
  const head = el("tr", {}, ...["dataset", "name", "task", "rows", "features", "created"].map((h) => el("th", {}, h)));
  const rows = datasets.map((d) => el("tr", { "data-dataset": d.id },
    el("td", {}, el("a", { href: `#/datasets/${d.id}` }, `#${d.id}`)), el("td", {}, d.name),
    el("td", {}, d.task || "–"), el("td", {}, String(d.n_samples)), el("td", {}, String(d.n_features)),
    el("td", {}, new Date(d.created_at).toLocaleString())));
  view.replaceChildren(el("h1", {}, "Datasets"), uploadForm(), el("table", { id: "datasets" }, head, ...rows));
}

// Ten bars of a number column's histogram, drawn as inline SVG; each bar's
// tooltip gives its range and count.
function histogram(h) {
  if (!h) return "";
  const width = 120, height = 28, top = Math.max(1, ...h.counts), bar = width / h.counts.length;
  return svg("svg", { class: "histogram", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `histogram: ${h.counts.join(", ")}` },
  ...h.counts.map((count, i) => {
    const tall = count ? Math.max(1, (count / top) * height) : 0;
    return svg("rect", { x: (i * bar + 0.5).toFixed(1), y: (height - tall).toFixed(1), width: (bar - 1).toFixed(1), height: tall.toFixed(1) },
      svg("title", {}, `${num(h.edges[i])} – ${num(h.edges[i + 1])}: ${count}`));
  }));
}

function profileTable(profile) {
  const head = el("tr", {}, ...["column", "type", "role", "missing", "distinct", "min", "max", "mean", "std", "distribution"]
    .map((h) => el("th", {}, h)));
  const rows = profile.columns.map((c) => {
    const cells = [el("th", { class: "name" }, c.name), el("td", { class: "type" }, c.type), el("td", { class: "role" }, c.role)];
    if (c.type === "ignored") {
      cells.push(el("td", { colspan: "7", class: "reason" }, c.reason || ""));
    } else {
      cells.push(el("td", { class: "missing" }, String(c.missing)), el("td", { class: "distinct" }, String(c.distinct)));
      if (c.type === "number") {
        cells.push(...["min", "max", "mean", "std"].map((k) => el("td", { class: k }, num(c[k]))),
          el("td", { class: "histogram" }, histogram(c.histogram)));
      } else {
        const top = (c.top || []).map((t) => el("span", { class: "category" }, `${t.value} `, el("small", {}, String(t.count))));
        cells.push(el("td", { colspan: "5", class: "top" }, ...top));
      }
    }
    return el("tr", { "data-column": c.name, class: c.role }, ...cells);
  });
  return el("table", { id: "profile", class: "compact" }, head, ...rows);
}

function classBalance(balance) {
  const most = Math.max(1, ...balance.map((b) => b.count));
  const total = balance.reduce((sum, b) => sum + b.count, 0);
  return el("table", { id: "class-balance", class: "compact" },
    el("tr", {}, el("th", {}, "class"), el("th", {}, "rows"), el("th", {}, "share")),
    ...balance.map((b) => el("tr", { "data-class": b.class }, el("th", {}, b.class), el("td", {}, String(b.count)),
      el("td", {}, el("span", { class: "bar", style: `width: ${(100 * b.count / most).toFixed(1)}px` }),
        ` ${total ? ((100 * b.count) / total).toFixed(1) : 0}%`))));
}

// What a first job on a table usually wants: the API fills in the input width
// and the output layer the task needs, and scores the held-out quarter.
const DEFAULT_JOB = {
  network: { layers: [{ units: 64, activation: "relu" }] },
  training: { epochs: 200, optimizer: "adam", normalize: "standardize", test_split: 0.25, validation_split: 0.1 },
};

function jobForm(datasetId) {
  const spec = el("textarea", { id: "job-spec", rows: "18", spellcheck: "false" });
  spec.value = JSON.stringify(DEFAULT_JOB, null, 2);
  const problem = el("p", { id: "job-error", class: "error", role: "alert" });
  const button = el("button", { type: "submit", id: "job-submit" }, "Train");
  const form = el("form", { id: "train", class: "card" }, el("h2", {}, "Train a network on this dataset"),
    el("p", {}, "Hidden layers only: the input width and the output layer are filled in. ",
      el("code", {}, "test_split"), " holds rows out to score the model on."), spec, button, problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    let body;
    try { body = JSON.parse(spec.value); } catch (error) { problem.textContent = `not JSON: ${error.message}`; return; }
    button.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...body, dataset_id: datasetId }) });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      problem.textContent = error.full || error.message;
    } finally { button.disabled = false; }
  });
  return form;
}

async function datasetPage(id) {
  const d = await api(`/datasets/${id}`);
  const count = (n, noun, plural = `${noun}s`) => `${n} ${n === 1 ? noun : plural}`;
  // A class column is stored one-hot, one target per class: count the classes.
  const outcome = d.classes ? count(d.classes.length, "class", "classes") : count(d.n_targets, "target");
  const summary = el("div", { class: "card" },
    el("p", { id: "shape" }, `${count(d.n_samples, "sample")} × ${count(d.n_features, "feature")} → ${outcome}`),
    el("p", { id: "task" }, `task: ${d.task || "not set"}`),
    el("p", {}, `features: ${(d.feature_names || []).join(", ") || "unnamed"}`),
    el("p", {}, `classes: ${(d.classes || []).join(", ") || "none (numeric targets)"}`),
    el("p", {}, `sha256 ${d.sha256}`));
  const parts = [el("h1", {}, `Dataset #${d.id}: ${d.name}`), summary];
  if (d.profile) {
    parts.push(el("div", { class: "card wide" }, el("h2", {}, `Columns (${d.profile.n_rows} rows)`), profileTable(d.profile)));
    if (d.profile.class_balance) {
      parts.push(el("div", { class: "card" }, el("h2", {}, "Class balance"), classBalance(d.profile.class_balance)));
    }
  }
  parts.push(jobForm(d.id));
  view.replaceChildren(...parts);
}

async function route() {
  stopCurrent(); stopCurrent = () => {};
  if (!key()) return askForKey();
  const [, kind, id] = (location.hash || "#/jobs").split("/");
  try {
    if (kind === "jobs" && id) await jobPage(Number(id));
    else if (kind === "datasets" && id) await datasetPage(Number(id));
    else if (kind === "datasets") await datasetsPage();
    else if (kind === "compare") await comparePage(id);
    else if (kind === "sweeps" && id) await sweepPage(Number(id));
    else if (kind === "sweeps") await sweepsPage();
    else if (kind === "trace") await tracePage(id ? Number(id) : null);
    else await jobsPage();
  } catch (error) {
    if (error.message !== "unauthorized") view.replaceChildren(el("p", { class: "error" }, error.full || error.message));
  }
}

document.getElementById("forget-key").addEventListener("click", () => { localStorage.removeItem("backprop-key"); route(); });
window.addEventListener("hashchange", route);
route();
