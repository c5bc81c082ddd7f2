// The dashboard: jobs, a live loss curve per job, datasets, predictions.
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
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function fmt(value) { return value === null || value === undefined ? "–" : Number(value).toPrecision(6); }

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
  view.replaceChildren(el("h1", {}, "Jobs"), table);
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
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  stopCurrent = () => clearInterval(timer);
}

async function* events(path, signal) {
  let lastId = "0";
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

async function jobPage(id) {
  const job = await api(`/jobs/${id}`);
  const spec = await api(`/jobs/${id}/spec`);
  const status = el("span", { id: "status", class: `status ${job.status}` }, job.status);
  const cancel = el("button", { id: "cancel", type: "button" }, "Cancel job");
  const reason = el("p", { id: "reason" });
  const modelId = el("span", { id: "model-id" }, "–");
  const accuracy = el("span", { id: "val-accuracy" }, "–");
  const chartBox = el("div", { id: "chart", "data-points": "0" });
  const predictBox = el("div", { id: "predict" });
  view.replaceChildren(
    el("h1", {}, `Job #${id} `, status, " ", cancel),
    reason,
    el("p", { id: "facts" }, "model ", modelId, " · validation accuracy ", accuracy),
    el("div", { class: "card" }, el("h2", {}, "Loss"), chartBox),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Network"), el("pre", {}, JSON.stringify(spec.network, null, 2))),
      el("div", { class: "card" }, el("h2", {}, "Training"), el("pre", {}, JSON.stringify(spec.training, null, 2)))),
    predictBox);

  const epochs = [], loss = [], valLoss = [];
  const chart = new uPlot({
    width: Math.min(1000, view.clientWidth - 40), height: 320,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: "epoch" }, { label: "loss", size: 70, values: (u, ticks) => ticks.map((v) => (v == null ? "" : Number(v).toPrecision(2))) }],
    series: [{ label: "epoch" }, { label: "loss", stroke: "#1f5fbf", width: 2 }, { label: "val loss", stroke: "#d9730d", width: 2 }],
  }, [epochs, loss, valLoss], chartBox);

  function show(state) {
    status.textContent = state.status;
    status.className = `status ${state.status}`;
    reason.textContent = state.error || (state.stop_reason ? `stopped: ${state.stop_reason}` : "");
    reason.className = state.error ? "error" : "";
    cancel.hidden = FINISHED.includes(state.status);
    cancel.disabled = state.cancel_requested;
    if (state.cancel_requested && !cancel.hidden) cancel.textContent = "Cancelling…";
    if (state.model_id) modelId.textContent = `#${state.model_id}`;
    if (state.model_id && !predictBox.hasChildNodes()) predictForm(state.model_id, predictBox);
  }
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try { show(await api(`/jobs/${id}/cancel`, { method: "POST" })); } catch (error) {
      reason.textContent = `could not cancel: ${error.message}`;
      reason.className = "error";
      cancel.disabled = false;
    }
  });
  show(job);
  const controller = new AbortController();
  stopCurrent = () => controller.abort();
  try {
    for await (const event of events(`/jobs/${id}/events`, controller.signal)) {
      if (event.type === "epochs") {
        for (const e of event.data.epochs) { epochs.push(e.epoch); loss.push(e.loss); valLoss.push(e.val_loss); }
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

// Starts with one row as wide as the model's input: an object keyed by feature
// name when the model has names, else a list. Lists go as `inputs`, objects as
// `instances`.
async function predictForm(modelId, box) {
  box.replaceChildren(el("p", {}, `Loading model #${modelId}…`));
  const { spec } = await api(`/models/${modelId}`);
  const names = spec.feature_names;
  const row = names ? Object.fromEntries(names.map((name) => [name, 0])) : Array(spec.input_dim).fill(0);
  const input = el("textarea", { rows: "4", id: "predict-input", "data-width": String(spec.input_dim) });
  input.value = JSON.stringify([row]);
  const output = el("pre", { id: "predict-output" });
  const button = el("button", { type: "submit" }, "Predict");
  const help = names
    ? `Rows as JSON: objects keyed by ${names.join(", ")}, or lists of ${spec.input_dim} numbers in that order.`
    : `Rows as JSON: lists of ${spec.input_dim} numbers.`;
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
    } catch (error) { output.textContent = error.message; }
  });
  box.replaceChildren(form);
}

async function datasetPage(id) {
  const d = await api(`/datasets/${id}`);
  const count = (n, noun, plural = `${noun}s`) => `${n} ${n === 1 ? noun : plural}`;
  // A class column is stored one-hot, one target per class: count the classes.
  const outcome = d.classes ? count(d.classes.length, "class", "classes") : count(d.n_targets, "target");
  view.replaceChildren(el("h1", {}, `Dataset #${d.id}: ${d.name}`), el("div", { class: "card" },
    el("p", { id: "shape" }, `${count(d.n_samples, "sample")} × ${count(d.n_features, "feature")} → ${outcome}`),
    el("p", {}, `features: ${(d.feature_names || []).join(", ") || "unnamed"}`),
    el("p", {}, `classes: ${(d.classes || []).join(", ") || "none (numeric targets)"}`),
    el("p", {}, `sha256 ${d.sha256}`)));
}

async function route() {
  stopCurrent(); stopCurrent = () => {};
  if (!key()) return askForKey();
  const [, kind, id] = (location.hash || "#/jobs").split("/");
  try {
    if (kind === "jobs" && id) await jobPage(Number(id));
    else if (kind === "datasets" && id) await datasetPage(Number(id));
    else await jobsPage();
  } catch (error) {
    if (error.message !== "unauthorized") view.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

document.getElementById("forget-key").addEventListener("click", () => { localStorage.removeItem("backprop-key"); route(); });
window.addEventListener("hashchange", route);
route();
