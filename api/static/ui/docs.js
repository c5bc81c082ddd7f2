// Renders /openapi.json as a browsable page: operations by tag, their
// parameters, bodies and answers, and a curl example built from the schemas.
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

// A plausible value for a schema: its own example when it has one.
function example(schema, depth = 0) {
  schema = resolve(schema);
  if (schema.example !== undefined) return schema.example;
  if (schema.examples?.length) return schema.examples[0];
  if (schema.default !== undefined && schema.default !== null) return schema.default;
  const options = schema.anyOf || schema.oneOf;
  if (options) return example(options.find((s) => resolve(s).type !== "null") || options[0], depth);
  if (schema.enum) return schema.enum[0];
  if (depth > 6) return null;
  switch (schema.type) {
    case "object": {
      const out = {};
      const required = new Set(schema.required || []);
      for (const [name, prop] of Object.entries(schema.properties || {})) {
        if (required.has(name) || depth === 0) out[name] = example(prop, depth + 1);
      }
      return out;
    }
    case "array": return [example(schema.items || {}, depth + 1)];
    case "integer": return Math.max(1, schema.minimum ?? 1);
    case "number": return 0.5;
    case "boolean": return true;
    case "string": return schema.format === "binary" ? "<bytes>" : "text";
    default: return null;
  }
}

function curl(method, path, operation) {
  const url = "http://127.0.0.1:8000" + path.replace(/\{(\w+)\}/g, "1");
  const parts = [`curl -X ${method.toUpperCase()} '${url}'`];
  if (operation.security) parts.push(`-H "Authorization: Bearer $KEY"`);
  const json = operation.requestBody?.content?.["application/json"];
  if (json) {
    parts.push(`-H 'Content-Type: application/json'`);
    parts.push(`-d '${JSON.stringify(example(json.schema))}'`);
  }
  return parts.join(" \\\n     ");
}

function schemaBlock(title, schema) {
  return el("div", {}, el("h4", {}, title), el("pre", {}, JSON.stringify(resolve(schema), null, 2)));
}

function render(document_) {
  components = document_.components?.schemas || {};
  const byTag = {};
  for (const [path, methods] of Object.entries(document_.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      (byTag[operation.tags?.[0] || "other"] ||= []).push([method, path, operation]);
    }
  }
  root.replaceChildren(el("h1", {}, `${document_.info.title} ${document_.info.version}`),
    el("p", {}, document_.info.description || ""));
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
      }
      body.append(el("h4", {}, "Example"), el("pre", { class: "example" }, curl(method, path, operation)));
      root.append(el("details", { class: "op", "data-operation": operation.operationId },
        el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ",
          el("code", { class: "path" }, path), " — ", operation.summary || ""), body));
    }
  }
}

fetch("/openapi.json").then((r) => r.json()).then(render).catch((error) => {
  root.replaceChildren(el("p", { class: "error" }, `Could not load /openapi.json: ${error.message}`));
});
