"""`/docs`: a self-contained page that renders `/openapi.json` (no CDN: it works offline)."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CareOps API reference</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2rem; }
details { margin: .3rem 0; } summary { cursor: pointer; }
code, pre { font: 12px ui-monospace, monospace; } .verb { font-weight: bold; color: #05a; }
.schema { margin-left: 1.2rem; } .type { color: #777; } input { width: 20rem; padding: .2rem; }
</style></head>
<body>
<h1 id="title">CareOps API reference</h1>
<p>Generated from the protos: <a href="openapi.json">openapi.json</a>.
Authentication: <code>Authorization: Bearer &lt;JWT&gt;</code>.
Filter: <input id="filter" placeholder="method or service"></p>
<main id="api">Loading…</main>
<script>
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid);
  return node;
};
let spec = null;
const named = ref => ref.replace("#/components/schemas/", "");
function typeOf(schema) {
  if (schema.$ref) return named(schema.$ref);
  if (schema.type === "array") return typeOf(schema.items || {}) + "[]";
  if (schema.enum) return schema.enum.join(" | ");
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  return [schema.type || "any", schema.format || ""].join(" ").trim();
}
function render(schema, seen) {
  const target = schema.$ref ? spec.components.schemas[named(schema.$ref)] : schema;
  const inner = target && target.type === "array" ? target.items : target;
  const holder = inner && inner.$ref ? spec.components.schemas[named(inner.$ref)] : inner;
  if (!holder || !holder.properties) return el("div");
  const list = el("div", {class: "schema"});
  for (const [name, field] of Object.entries(holder.properties)) {
    const ref = field.$ref || (field.items && field.items.$ref);
    const label = el("span", {}, el("code", {}, name), " ",
                     el("span", {class: "type"}, typeOf(field)));
    if (ref && !seen.has(ref)) {
      const more = el("details", {}, el("summary", {}, label));
      more.addEventListener("toggle", () => {
        if (more.open && more.children.length === 1)
          more.append(render(field, new Set([...seen, ref])));
      });
      list.append(more);
    } else list.append(el("div", {}, label));
  }
  return list;
}
function show(filter) {
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [verb, op] of Object.entries(item)) {
      if (filter && !path.toLowerCase().includes(filter)) continue;
      const tag = (op.tags || ["gateway"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push([path, verb, op]);
    }
  }
  const main = el("main", {id: "api"});
  for (const [tag, ops] of groups) {
    main.append(el("h2", {}, tag));
    for (const [path, verb, op] of ops) {
      const body = op.requestBody && op.requestBody.content["application/json"];
      const ok = Object.values((op.responses["200"] || {}).content || {})[0];
      const card = el("details", {},
        el("summary", {}, el("span", {class: "verb"}, verb.toUpperCase()), " ",
           el("code", {}, path)));
      if (body) card.append(el("p", {}, "Request ", el("code", {}, typeOf(body.schema))),
                            render(body.schema, new Set()));
      if (ok) card.append(el("p", {}, "Response ", el("code", {}, typeOf(ok.schema))),
                          render(ok.schema, new Set()));
      main.append(card);
    }
  }
  document.getElementById("api").replaceWith(main);
}
fetch("openapi.json").then(r => r.json()).then(doc => {
  spec = doc;
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  show("");
  document.getElementById("filter").addEventListener(
    "input", e => show(e.target.value.trim().toLowerCase()));
}).catch(err => { document.getElementById("api").textContent = "Cannot load: " + err; });
</script>
</body></html>
"""
