"use strict";
// Renders the embedded OpenAPI document as a readable page; no dependencies.
(async function () {
  const main = document.getElementById("doc");
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  let doc;
  try {
    doc = await (await fetch("/api/v1/openapi.json")).json();
  } catch (e) {
    main.textContent = "Could not load openapi.json: " + e;
    return;
  }
  main.replaceChildren();
  main.append(el("p", "desc", doc.info.description || ""));
  const ref = (s) => (s && s.$ref ? s.$ref.split("/").pop() : s && s.type ? s.type : "");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of ["get", "post", "delete"]) {
      const op = item[m];
      if (!op) continue;
      const box = el("section", "op");
      const h = el("h2");
      h.append(el("span", "method " + m.toUpperCase(), m.toUpperCase()), el("code", null, path));
      box.append(h, el("p", null, op.summary || ""));
      if (op.description) box.append(el("p", "desc", op.description));
      const params = (item.parameters || []).concat(op.parameters || []);
      if (params.length) {
        const tb = el("table");
        const head = el("tr");
        head.append(el("th", null, "parameter"), el("th", null, "in"), el("th", null, "type"), el("th", null, "description"));
        tb.append(head);
        params.forEach((p) => { const tr = el("tr"); tr.append(el("td", null, p.name), el("td", null, p.in), el("td", null, ref(p.schema)), el("td", null, p.description || "")); tb.append(tr); });
        box.append(tb);
      }
      if (op.requestBody) {
        for (const [ct, media] of Object.entries(op.requestBody.content)) {
          box.append(el("p", null, "Request body " + ct + ": " + ref(media.schema)));
          if (media.schema && media.schema.properties) {
            box.append(el("pre", null, Object.entries(media.schema.properties).map(([k, v]) => k + ": " + (ref(v) || JSON.stringify(v))).join("\n")));
          }
        }
      }
      const codes = Object.entries(op.responses || {}).map(([c, r]) => c + " " + (r.description || ref(r)));
      box.append(el("p", null, "Responses: " + codes.join(" · ")));
      main.append(box);
    }
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  main.append(el("h2", null, "Schemas"));
  for (const [name, s] of Object.entries(schemas)) {
    const d = el("details", "op");
    d.append(el("summary", null, name), el("pre", null, JSON.stringify(s, null, 2)));
    main.append(d);
  }
})();
