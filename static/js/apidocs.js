// The API reference page: draws the endpoint list from the OpenAPI document.
// Every text is set with textContent, never as markup.
(function () {
  var root = document.getElementById("api-reference");
  if (!root) return;
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function refName(schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.type === "array" && schema.items) return "list of " + refName(schema.items);
    return schema.type || "";
  }
  function fieldsTable(doc, schema) {
    if (schema && schema.$ref) schema = doc.components.schemas[schema.$ref.split("/").pop()];
    if (!schema || !schema.properties) return null;
    var table = el("table", "", "api-fields");
    var required = schema.required || [];
    Object.keys(schema.properties).forEach(function (name) {
      var prop = schema.properties[name];
      var type = prop.anyOf ? prop.anyOf.map(refName).join(" | ") : refName(prop);
      var row = el("tr");
      row.appendChild(el("td", name + (required.indexOf(name) >= 0 ? " *" : "")));
      row.appendChild(el("td", type));
      row.appendChild(el("td", prop.description || ""));
      table.appendChild(row);
    });
    return table;
  }
  function operation(doc, path, method, op) {
    var card = el("section", "", "card api-endpoint");
    card.setAttribute("data-endpoint", method.toUpperCase() + " " + path);
    var head = el("h3");
    head.appendChild(el("span", method.toUpperCase(), "badge"));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("code", path));
    card.appendChild(head);
    if (op.summary) card.appendChild(el("p", op.summary));
    if (op.description) card.appendChild(el("p", op.description, "muted"));
    var params = (op.parameters || []).map(function (p) { return p.name + " (" + p.in + ")"; });
    if (params.length) card.appendChild(el("p", "Parameters: " + params.join(", ")));
    var body = op.requestBody && op.requestBody.content["application/json"];
    if (body) {
      card.appendChild(el("p", "JSON body: " + refName(body.schema)));
      var table = fieldsTable(doc, body.schema);
      if (table) card.appendChild(table);
    }
    var answers = Object.keys(op.responses || {}).map(function (code) {
      var content = op.responses[code].content;
      var schema = content && content["application/json"] && content["application/json"].schema;
      return code + (schema ? " " + refName(schema) : "");
    });
    card.appendChild(el("p", "Answers: " + answers.join(", "), "muted"));
    return card;
  }
  fetch(root.getAttribute("data-openapi"), { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (doc) {
      root.textContent = "";
      var groups = {};
      Object.keys(doc.paths).forEach(function (path) {
        Object.keys(doc.paths[path]).forEach(function (method) {
          var op = doc.paths[path][method];
          var tag = (op.tags && op.tags[0]) || "Other";
          (groups[tag] = groups[tag] || []).push(operation(doc, path, method, op));
        });
      });
      Object.keys(groups).forEach(function (tag) {
        root.appendChild(el("h2", tag));
        groups[tag].forEach(function (card) { root.appendChild(card); });
      });
      root.setAttribute("data-loaded", "true");
    })
    .catch(function (err) {
      root.textContent = "";
      root.appendChild(el("p", "The API document could not be loaded: " + err, "alert-box warn"));
    });
})();
