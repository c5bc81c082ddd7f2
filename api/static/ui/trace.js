// The backprop trace (#/trace, #/trace/<model id>): one backpropagation step on one
// sample, drawn as the network it runs through. A "Next step" button walks the
// four stages of seed 001's worked example: forward pass, error, backward pass,
// update; each stage adds its numbers to the drawing and is highlighted.
// Loaded before app.js, whose helpers (el, svg, api, view) it uses when called.
"use strict";

// Seed 001's 2-2-2 network, sample and learning rate; its biases are not updated.
const SEED_TRACE = {
  network: {
    input_dim: 2,
    layers: [
      { units: 2, activation: "sigmoid", weights: [[0.15, 0.20], [0.25, 0.30]], bias: [0.35, 0.35] },
      { units: 2, activation: "sigmoid", weights: [[0.40, 0.45], [0.50, 0.55]], bias: [0.60, 0.60] },
    ],
  },
  inputs: [0.05, 0.10],
  targets: [0.01, 0.99],
  learning_rate: 0.5,
  train_bias: false,
};

const TRACE_STAGES = [
  ["Forward pass", "Layer by layer, each unit adds up its weighted inputs and its bias, net = Σ w·out + b, and outputs out = f(net)."],
  ["Error", "Each output is compared with its target; E_total is the sum of the outputs' errors (the loss of this sample)."],
  ["Backward pass", "From the outputs back, each unit's δ = ∂E/∂net; a weight's gradient is ∂E/∂w = δ of the unit it feeds × out of the unit it comes from."],
  ["Update", "Every weight moves against its gradient: w⁺ = w − η·∂E/∂w, all gradients taken with the weights from before the update."],
];

// Nine significant digits, without trailing zeros: the seed's numbers to the digit.
function traceNum(value) {
  if (value === null || value === undefined) return "–";
  return String(Number(Number(value).toPrecision(9)));
}

// Up to this size every connection is labelled; beyond it the drawing shows the
// lines and the tables below hold the numbers.
const TRACE_LABELLED = { weights: 40, units: 8 };

function traceLayers(answer) {
  const layers = [];
  for (const [name, unit] of Object.entries(answer.units)) {
    (layers[unit.layer] ||= []).push(name);
  }
  return layers;
}

// The drawing's own style, inside it, so that a saved copy of the SVG looks the same.
const TRACE_STYLE = `
  text { font: 12px ui-monospace, monospace; text-anchor: middle; fill: #1d2330;
    paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
  text.name { font-weight: 700; stroke: none; }
  text.aside { text-anchor: start; }
  text.total { font-size: 15px; text-anchor: end; font-weight: 600; }
  .edge { stroke: #aab1be; stroke-width: 1.5; }
  .unit circle { fill: #fff; stroke: #1d2330; stroke-width: 2; }
  .layer-input circle { fill: #eef0f4; }
  .current { fill: #1f5fbf; font-weight: 700; }
  .gradient.current, .stage-2.current { fill: #c2261d; }
  .after.current, .stage-3.current { fill: #18794e; }
  .at-forward .unit circle { stroke: #1f5fbf; }
  .at-error .layer-output circle { stroke: #c2261d; fill: #fbe3e1; }
  .at-error .total { fill: #c2261d; }
  .at-backward .edge { stroke: #e08a84; }
  .at-backward .unit:not(.layer-input) circle { stroke: #c2261d; }
  .at-update .edge { stroke: #6dbb8f; stroke-width: 2.5; }
`;

function traceDrawing(answer) {
  const layers = traceLayers(answer);
  const weights = Object.entries(answer.weights);
  const labelled = weights.length <= TRACE_LABELLED.weights && Math.max(...layers.map((l) => l.length)) <= TRACE_LABELLED.units;
  const tallest = Math.max(...layers.map((l) => l.length));
  // Labelled, a unit's numbers stand to its lower right and each weight's label sits
  // above its line at 1 - 0.8/(n + 1) of the way (n: units of the layer it comes
  // from), clear of the numbers of the unit it leaves: the labels of the lines into
  // one unit are then 0.8 row gaps / (n + 1) apart, kept above three lines of text.
  const colGap = labelled ? 400 : 160, radius = labelled ? 24 : 12, margin = labelled ? 50 : 40;
  const rowGap = labelled ? Math.max(240, 60 * (tallest + 1)) : 60;
  const width = margin * 2 + colGap * (layers.length - 1) + (labelled ? 170 : 0);
  const height = margin * 2 + rowGap * (tallest - 1) + (labelled ? 150 : 0);
  const at = {};
  layers.forEach((names, l) => names.forEach((name, j) => {
    at[name] = { x: margin + l * colGap, y: margin + (tallest - names.length) * rowGap / 2 + j * rowGap };
  }));
  const root = svg("svg", { id: "trace-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    style: "max-width: 100%; height: auto",
    "aria-label": "the traced network", "data-stage": "0" });
  const edges = svg("g", { class: "edges" }), labels = svg("g", { class: "labels" }), nodes = svg("g", { class: "units" });
  for (const [name, w] of weights) {
    const a = at[w.from], b = at[w.to];
    edges.append(svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: "edge", "data-weight": name },
      svg("title", {}, `${name}: ${w.from} → ${w.to} (${w.at})`)));
    if (!labelled) continue;
    const sources = layers[answer.units[w.from].layer];
    const t = 1 - 0.8 / (sources.length + 1);
    const x = a.x + (b.x - a.x) * t, y = a.y + (b.y - a.y) * t;
    labels.append(svg("text", { x, y: y - 34, class: "weight", "data-weight": name },
      svg("tspan", { x, dy: 0, "data-stage": "0" }, `${name} = ${traceNum(w.value)}`),
      svg("tspan", { x, dy: 15, "data-stage": "2", class: "gradient" }, `∂E/∂${name} = ${traceNum(w.gradient)}`),
      svg("tspan", { x, dy: 15, "data-stage": "3", class: "after" }, `${name}⁺ = ${traceNum(w.after)}`)));
  }
  for (const [name, unit] of Object.entries(answer.units)) {
    const { x, y } = at[name];
    const group = svg("g", { class: `unit layer-${unit.layer === 0 ? "input" : unit.target !== undefined ? "output" : "hidden"}`, "data-unit": name },
      svg("circle", { cx: x, cy: y, r: radius }),
      svg("text", { x, y: y + 4, class: "name" }, name));
    if (labelled) {
      const lines = unit.layer === 0
        ? [["0", `out = ${traceNum(unit.out)}`]]
        : [["0", `net = ${traceNum(unit.net)}`], ["0", `out = ${traceNum(unit.out)}`]];
      if (unit.target !== undefined) {
        lines.push(["1", `target = ${traceNum(unit.target)}`], ["1", `E = ${traceNum(answer.error.outputs[name])}`]);
      }
      if (unit.layer > 0) {
        if (unit.dE_dout !== undefined) lines.push(["2", `∂E/∂out = ${traceNum(unit.dE_dout)}`]);
        lines.push(["2", `δ = ${traceNum(unit.delta)}`]);
        const b = unit.bias;
        lines.push(["0", `b = ${traceNum(b.value)}`], ["2", `∂E/∂b = ${traceNum(b.gradient)}`],
          ["3", `b⁺ = ${traceNum(b.after)}${answer.train_bias ? "" : " (frozen)"}`]);
      }
      const input = unit.layer === 0, left = input ? x : x + radius + 4;
      group.append(svg("text", { x: left, y: y + radius + 16, class: input ? "values" : "values aside" },
        ...lines.map(([stage, text], k) => svg("tspan", { x: left, dy: k ? 15 : 0, "data-stage": stage, class: `stage-${stage}` }, text))));
    }
    group.append(svg("title", {}, `${name}${unit.activation ? ` (${unit.activation})` : ""}`));
    nodes.append(group);
  }
  const total = svg("text", { x: width - 20, y: 24, class: "total", "data-stage": "1", "text-anchor": "end" },
    `E_total = ${traceNum(answer.error.total)}`);
  root.append(svg("style", {}, TRACE_STYLE), edges, nodes, labels, total);
  return root;
}

// Shows the numbers of the stages up to ``stage`` and marks that stage's own.
function traceShowStage(root, stage) {
  root.setAttribute("data-stage", String(stage));
  for (const node of root.querySelectorAll("[data-stage]")) {
    if (node === root) continue;
    const own = Number(node.getAttribute("data-stage"));
    node.style.visibility = own <= stage ? "visible" : "hidden";
    node.classList.toggle("current", own === stage);
  }
}

function traceTables(answer) {
  const head = (...names) => el("tr", {}, ...names.map((h) => el("th", {}, h)));
  const units = Object.entries(answer.units).filter(([, u]) => u.layer > 0).map(([name, u]) => el("tr", { "data-unit": name },
    el("th", {}, name), el("td", {}, traceNum(u.net)), el("td", {}, traceNum(u.out)),
    el("td", {}, u.target === undefined ? "" : traceNum(u.target)),
    el("td", {}, u.target === undefined ? "" : traceNum(answer.error.outputs[name])),
    el("td", {}, traceNum(u.dE_dout)), el("td", {}, traceNum(u.delta)),
    el("td", {}, traceNum(u.bias.value)), el("td", {}, traceNum(u.bias.gradient)), el("td", {}, traceNum(u.bias.after))));
  const weights = Object.entries(answer.weights).map(([name, w]) => el("tr", { "data-weight": name },
    el("th", {}, name), el("td", {}, `${w.from} → ${w.to}`), el("td", {}, el("code", {}, w.at)),
    el("td", {}, traceNum(w.value)), el("td", {}, traceNum(w.gradient)), el("td", {}, traceNum(w.after))));
  return el("details", { class: "card wide", id: "trace-numbers" }, el("summary", {}, "Every number"),
    el("p", {}, `loss ${answer.loss}, learning rate η = ${traceNum(answer.learning_rate)}, biases ${answer.train_bias ? "trained" : "frozen"}; E_total = ${traceNum(answer.error.total)}`),
    el("table", { class: "compact numbers", id: "trace-units" },
      head("unit", "net", "out", "target", "E", "∂E/∂out", "δ = ∂E/∂net", "b", "∂E/∂b", "b⁺"), ...units),
    el("table", { class: "compact numbers", id: "trace-weights" }, head("weight", "from → to", "at", "w", "∂E/∂w", "w⁺"), ...weights));
}

// Indented JSON with each list of numbers on one line.
function traceJson(value) {
  return JSON.stringify(value, null, 2).replace(/\[\s+([^\[\]{}]*?)\s+\]/g,
    (_, inner) => `[${inner.split(/,\s*/).join(", ")}]`);
}

function traceField(label, node, hint) {
  return el("label", {}, el("span", {}, label), node, hint ? el("small", {}, hint) : "");
}

async function tracePage(modelId) {
  let model = null;
  if (modelId) {
    const weights = await api(`/models/${modelId}/weights`);
    const output = weights.layers[weights.layers.length - 1];
    // A softmax output needs a class distribution: the first class, one-hot.
    const targets = Array.from({ length: output.units }, (_, j) => (output.activation === "softmax" && j === 0 ? 1 : 0));
    model = { inputs: Array(weights.input_dim).fill(0), targets };
  }
  const start = model ? { ...model, learning_rate: "", train_bias: null } : SEED_TRACE;
  const network = el("textarea", { id: "trace-network", rows: "14", spellcheck: "false" });
  if (!model) network.value = traceJson(start.network);
  const inputs = el("input", { id: "trace-inputs", size: "40", spellcheck: "false", value: JSON.stringify(start.inputs) });
  const targets = el("input", { id: "trace-targets", size: "40", spellcheck: "false", value: JSON.stringify(start.targets) });
  const rate = el("input", { id: "trace-lr", size: "8", value: String(start.learning_rate), placeholder: model ? "the job's" : "0.5" });
  const bias = el("select", { id: "trace-train-bias" },
    ...(model ? [el("option", { value: "" }, "as the job trained")] : []),
    el("option", { value: "true" }, "trained"), el("option", { value: "false" }, "frozen"));
  bias.value = model ? "" : String(start.train_bias);
  const run = el("button", { type: "submit", id: "trace-run" }, "Trace one step");
  const problem = el("p", { id: "trace-error", class: "error", role: "alert" });
  const form = el("form", { id: "trace-form", class: "card" },
    el("h2", {}, model ? `Model #${modelId}` : "Network, sample, learning rate"),
    model
      ? el("p", {}, "The model's own weights and loss. Inputs and targets are in the network's space: ",
        "the row after the model's preprocessing (normalized, one-hot), and one target per output unit.")
      : el("p", {}, "Seed 001's worked example; edit any of it. ", el("code", {}, "weights[j][i]"),
        " is the weight into unit j from input i."),
    model ? "" : traceField("network (weights and biases of every layer)", network),
    el("div", { class: "fields" },
      traceField("inputs", inputs), traceField("targets", targets),
      traceField("learning rate η", rate), traceField("biases", bias)),
    run, problem);
  const stageTitle = el("strong", { id: "trace-stage", style: "margin-left: .8em" }, "");
  const stageText = el("p", { id: "trace-stage-text" }, "");
  const back = el("button", { type: "button", id: "trace-back" }, "◂ Back");
  const next = el("button", { type: "button", id: "trace-step" }, "Next step ▸");
  const drawing = el("div", { id: "trace-drawing", class: "card wide" });
  const numbers = el("div", {});
  const controls = el("div", { class: "card", id: "trace-controls", hidden: "" },
    el("div", { class: "trace-steps" }, back, next, stageTitle), stageText);
  view.replaceChildren(el("h1", {}, "Backprop trace"), form, controls, drawing, numbers);

  let root = null, stage = 0;
  function show() {
    traceShowStage(root, stage);
    stageTitle.textContent = `${stage + 1} / ${TRACE_STAGES.length}: ${TRACE_STAGES[stage][0]}`;
    stageText.textContent = TRACE_STAGES[stage][1];
    back.disabled = stage === 0;
    next.disabled = stage === TRACE_STAGES.length - 1;
    TRACE_STAGES.forEach(([title], l) => root.classList.toggle(`at-${title.split(" ")[0].toLowerCase()}`, l === stage));
  }
  back.addEventListener("click", () => { stage = Math.max(0, stage - 1); show(); });
  next.addEventListener("click", () => { stage = Math.min(TRACE_STAGES.length - 1, stage + 1); show(); });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const body = {};
    try {
      for (const [name, field] of [["inputs", inputs], ["targets", targets]]) body[name] = JSON.parse(field.value);
      if (!model) body.network = JSON.parse(network.value);
    } catch (error) { problem.textContent = `not JSON: ${error.message}`; return; }
    if (rate.value.trim() !== "") body.learning_rate = Number(rate.value);
    if (bias.value !== "") body.train_bias = bias.value === "true";
    run.disabled = true;
    try {
      const answer = await api(model ? `/models/${modelId}/trace` : "/trace",
        { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      root = traceDrawing(answer);
      drawing.replaceChildren(root);
      numbers.replaceChildren(traceTables(answer));
      controls.hidden = false;
      stage = 0;
      show();
    } catch (error) {
      problem.textContent = error.full || error.message;
    } finally { run.disabled = false; }
  });
  form.requestSubmit();
}
