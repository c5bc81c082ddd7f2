// Renders /openapi.json as a browsable page: operations by tag, their
// parameters, bodies and answers, and a curl command for each of the document's
// examples. Set KEY to an API key in the shell before pasting one.
"use strict";

const root = document.getElementById("docs");
let components = {};

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function resolve(schema) {
  while (schema && schema.$ref) schema = components[schema.$ref.split("/").pop()];
  return schema || {};
}

// Single-quoted for a POSIX shell: a ' inside becomes '\''.
function quoted(text) { return `'${String(text).replace(/'/g, "'\\''")}'`; }

// The requests of an operation's examples, exactly as the document gives them:
// one per body media type that has an example (one without a body if the
// operation takes none). tests/service/test_docs_examples.py sends the same ones.
function examples(path, operation) {
  const content = operation.requestBody?.content;
  const bodies = content
    ? Object.entries(content).filter(([, media]) => media.example !== undefined).map(([type, media]) => [type, media.example])
    : [[null, undefined]];
  return bodies.map(([type, body]) => {
    const query = new URLSearchParams();
    let url = path;
    for (const p of operation.parameters || []) {
      if (p.example === undefined) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(p.example));
      else if (p.in === "query" && (!p["x-body-media-type"] || p["x-body-media-type"] === type)) query.set(p.name, p.example);
    }
    const search = query.toString();
    return { url: search ? `${url}?${search}` : url, type, body };
  });
}

function curl(method, operation, { url, type, body }) {
  const parts = [`curl -X ${method.toUpperCase()} ${quoted(location.origin + url)}`];
  const answer = operation.responses?.[Object.keys(operation.responses || {}).find((s) => s.startsWith("2"))];
  const media = Object.keys(answer?.content || {})[0];
  if (media === "text/event-stream") parts.push("-N");
  if (media === "image/png") parts.push("-o answer.png");
  if (operation.security) parts.push(`-H "Authorization: Bearer $KEY"`);
  if (type === null) return parts.join(" \\\n     ");
  parts.push(`-H ${quoted(`Content-Type: ${type}`)}`);
  if (type === "application/json") {
    parts.push(`-d ${quoted(JSON.stringify(body))}`);
    return parts.join(" \\\n     ");
  }
  // Text bodies (CSV) go through a here-document, so they paste line for line.
  parts.push("--data-binary @- <<'BODY'");
  return `${parts.join(" \\\n     ")}\n${String(body).replace(/\n$/, "")}\nBODY`;
}

// The schema without its examples, which the example blocks show.
function schemaBlock(title, schema) {
  const { examples: _, ...shown } = resolve(schema);
  return el("div", {}, el("h4", {}, title), el("pre", {}, JSON.stringify(shown, null, 2)));
}

function render(document_) {
  components = document_.components?.schemas || {};
  const byTag = {};
  const ending = [];
  for (const [path, methods] of Object.entries(document_.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      // Cancelling and deleting come last: pasted in order, they would otherwise end
      // the job or dataset that the examples after them use.
      if (method === "delete" || path.endsWith("/cancel")) ending.push([method, path, operation]);
      else (byTag[operation.tags?.[0] || "other"] ||= []).push([method, path, operation]);
    }
  }
  if (ending.length) byTag["cancel and delete"] = ending;
  root.replaceChildren(el("h1", {}, `${document_.info.title} ${document_.info.version}`),
    el("p", {}, document_.info.description || ""),
    el("p", { id: "examples-note" }, "The examples work as shown on a new service, in order: ",
      "set ", el("code", {}, "KEY=bp_..."), " (from ", el("code", {}, "backprop keys create --owner NAME"),
      ") first; an id of 1 is the first dataset, job or model you made."));
  for (const [tag, operations] of Object.entries(byTag)) {
    root.append(el("h2", {}, tag));
    for (const [method, path, operation] of operations) {
      const body = el("div", { class: "body" });
      for (const p of operation.parameters || []) {
        body.append(el("p", {}, el("code", {}, `${p.name}`), ` (${p.in}${p.required ? ", required" : ""}) `, p.description || ""));
      }
      const content = operation.requestBody?.content || {};
      for (const [type, media] of Object.entries(content)) body.append(schemaBlock(`Request body: ${type}`, media.schema));
      for (const [status, answer] of Object.entries(operation.responses || {})) {
        const media = Object.values(answer.content || {})[0];
        body.append(el("p", {}, el("strong", {}, status), " ", answer.description || ""));
        if (media && status.startsWith("2")) body.append(schemaBlock(`Answer ${status}`, media.schema));
        if (media?.example !== undefined) {
          body.append(el("h4", {}, `Example answer ${status}`), el("pre", { class: "answer" }, JSON.stringify(media.example, null, 2)));
        }
      }
      body.append(el("h4", {}, "Example"));
      for (const request of examples(path, operation)) {
        body.append(el("pre", { class: "example", "data-content-type": request.type || "" }, curl(method, operation, request)));
      }
      root.append(el("details", { class: "op", "data-operation": operation.operationId },
        el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ",
          el("code", { class: "path" }, path), " — ", operation.summary || ""), body));
    }
  }
}

fetch("/openapi.json").then((r) => r.json()).then(render).catch((error) => {
  root.replaceChildren(el("p", { class: "error" }, `Could not load /openapi.json: ${error.message}`));
});
