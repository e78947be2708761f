// authtrail web UI: plain JavaScript, no build step. Every piece of data comes from the
// API with the key the user typed (kept in this tab's sessionStorage only), and every
// value is inserted as text, never as HTML.
"use strict";

const KEY_STORAGE = "authtrail-api-key";
const state = { key: sessionStorage.getItem(KEY_STORAGE) || "", after: 0, alerts: [], selected: null, polling: false };

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.className = isError ? "error" : "muted";
}

// --- API ---------------------------------------------------------------------------

async function api(path, body) {
  if (!state.key) throw new Error("enter an API key first");
  const options = { headers: { Authorization: `Bearer ${state.key}` } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    state.key = "";
    sessionStorage.removeItem(KEY_STORAGE);
    setStatus("key refused", true);
    throw new Error("the API refused the key");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
  return data;
}

const query = (sql, limit = 1000) => api("/api/v1/query", { sql, limit });

// --- Tables --------------------------------------------------------------------------

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function table(rows, columns) {
  columns = columns || (rows.length ? Object.keys(rows[0]) : []);
  const head = el("tr", {}, ...columns.map((name) => el("th", {}, name)));
  const body = rows.map((row) => el("tr", {}, ...columns.map((name) => el("td", {}, cell(row[name])))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function show(container, ...nodes) {
  container.replaceChildren(...nodes);
}

// --- Live alerts ---------------------------------------------------------------------

function severity(name) {
  return el("span", { class: `severity ${name}` }, name);
}

function addAlerts(alerts) {
  const body = $("#alerts tbody");
  for (const alert of alerts) {
    state.alerts.push(alert);
    const row = el("tr", { class: "new", "data-id": alert.id, onclick: () => selectAlert(alert, row) },
      el("td", {}, alert.time), el("td", {}, severity(alert.severity)), el("td", {}, alert.detector),
      el("td", {}, alert.principal), el("td", {}, alert.summary));
    body.prepend(row);
  }
  $("#alerts-empty").hidden = state.alerts.length > 0;
  $("#alert-count").textContent = state.alerts.length ? `(${state.alerts.length})` : "";
}

async function pollAlerts() {
  if (state.polling) return;
  state.polling = true;
  while (state.key) {
    try {
      const data = await api(`/api/v1/live/alerts?after=${state.after}&wait=20`);
      addAlerts(data.alerts);
      state.after = Math.max(state.after, data.latest);
      setStatus("connected, live");
    } catch (error) {
      setStatus(error.message, true);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  state.polling = false;
}

function principalLink(principal) {
  return el("a", { class: "link", onclick: () => showTimeline(principal) }, principal);
}

async function selectAlert(alert, row) {
  document.querySelectorAll("#alerts tr.selected").forEach((r) => r.classList.remove("selected"));
  row.classList.add("selected");
  state.selected = alert.id;
  const fields = [
    ["Detector", alert.detector], ["Severity", severity(alert.severity)], ["Time", alert.time],
    ["Principal", principalLink(alert.principal)], ["Key", alert.key], ["Token", alert.token_id],
    ["Source IP", alert.source_ip], ["Target service", alert.target_service],
    ["ATT&CK", alert.attack_technique], ["Suppressed repeats", alert.suppressed_count], ["Alert id", alert.id],
  ].filter(([, value]) => value !== null && value !== undefined);
  const evidence = el("div", { id: "evidence" }, el("p", { class: "muted" }, "Loading evidence…"));
  show($("#alert-detail"),
    el("h2", {}, alert.summary),
    el("dl", {}, ...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])),
    el("h3", {}, `Evidence (${alert.evidence_ids.length} events)`), evidence);
  // Evidence reaches the lake with the next flush; until then, ask again.
  for (let attempt = 0; attempt < 60 && state.selected === alert.id; attempt++) {
    try {
      const data = await api("/api/v1/events/lookup", { ids: alert.evidence_ids });
      const columns = ["time", "kind", "principal", "service", "target_service", "outcome", "source_ip", "token_id", "id"];
      const nodes = [table(data.rows, columns)];
      if (data.row_count < alert.evidence_ids.length) {
        nodes.unshift(el("p", { class: "muted" }, `${data.row_count} of ${alert.evidence_ids.length} evidence events are in the lake; the rest arrive with the next flush.`));
      }
      if (state.selected === alert.id) show(evidence, ...nodes);
      if (data.row_count >= alert.evidence_ids.length) return;
    } catch (error) {
      show(evidence, el("p", { class: "error" }, error.message));
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// --- Principal timeline --------------------------------------------------------------

async function showTimeline(principal) {
  switchTab("principal");
  $("#principal").value = principal;
  const params = new URLSearchParams();
  if ($("#from").value) params.set("from", $("#from").value);
  if ($("#to").value) params.set("to", $("#to").value);
  params.set("limit", "1000");
  const target = $("#timeline");
  show(target, el("p", { class: "muted" }, "Loading…"));
  try {
    const data = await api(`/api/v1/principals/${encodeURIComponent(principal)}/timeline?${params}`);
    const columns = ["time", "kind", "service", "source_service", "target_service", "outcome", "reason", "source_ip", "token_id", "resource", "action", "id"];
    show(target, el("p", { class: "muted" }, `${data.row_count} events of ${principal}${data.truncated ? " (truncated)" : ""}, oldest first`),
      el("div", { class: "result" }, table(data.rows, columns)));
  } catch (error) {
    show(target, el("p", { class: "error" }, error.message));
  }
}

// --- Service graph -------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function drawGraph() {
  const target = $("#graph");
  show(target, el("p", { class: "muted" }, "Loading…"));
  const servicesOnly = $("#services-only").checked ? "AND principal NOT LIKE 'user:%'" : "";
  try {
    const edges = await query(`SELECT principal AS source, coalesce(target_service, service) AS target, count(*) AS events
      FROM events WHERE kind = 'authz' ${servicesOnly} GROUP BY 1, 2 ORDER BY events DESC LIMIT 150`);
    const flagged = await query("SELECT DISTINCT key FROM alerts WHERE detector = 'new_service_edge'");
    const anomalous = new Set(flagged.rows.map((row) => row.key));
    for (const alert of state.alerts) if (alert.detector === "new_service_edge") anomalous.add(alert.key);
    const list = edges.rows.map((row) => ({ ...row, anomalous: anomalous.has(`${row.source} -> ${row.target}`) }));
    const known = new Set(list.map((edge) => `${edge.source} -> ${edge.target}`));
    for (const key of anomalous) {
      const [source, dest] = key.split(" -> ");
      if (dest && !known.has(key) && (!servicesOnly || !source.startsWith("user:"))) list.push({ source, target: dest, events: 0, anomalous: true });
    }
    renderGraph(target, list);
  } catch (error) {
    show(target, el("p", { class: "error" }, error.message));
  }
}

function renderGraph(target, edges) {
  if (!edges.length) {
    show(target, el("p", { class: "muted" }, "No authz events in the lake yet."));
    return;
  }
  // Callers on the left, the services they reach on the right.
  const left = [...new Set(edges.map((e) => e.source))].sort();
  const right = [...new Set(edges.map((e) => e.target))].sort();
  const rowHeight = 26, width = 900, x1 = 230, x2 = width - 230;
  const height = Math.max(left.length, right.length) * rowHeight + 40;
  const y = (list, name) => 30 + list.indexOf(name) * rowHeight * (Math.max(left.length, right.length) / list.length);
  const picture = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "service graph" });
  for (const edge of edges.sort((a, b) => a.anomalous - b.anomalous)) {
    const line = svg("line", { x1, y1: y(left, edge.source), x2, y2: y(right, edge.target), class: edge.anomalous ? "anomalous" : "normal", "stroke-width": Math.min(1 + Math.log10(edge.events + 1), 4) });
    line.append(svg("title", {}, `${edge.source} -> ${edge.target}: ${edge.events} authz events${edge.anomalous ? " (flagged by new_service_edge)" : ""}`));
    picture.append(line);
  }
  for (const name of left) {
    picture.append(svg("circle", { cx: x1, cy: y(left, name), r: 4 }));
    picture.append(svg("text", { x: x1 - 8, y: y(left, name) + 4, "text-anchor": "end" }, name));
  }
  for (const name of right) {
    picture.append(svg("circle", { cx: x2, cy: y(right, name), r: 4 }));
    picture.append(svg("text", { x: x2 + 8, y: y(right, name) + 4 }, name));
  }
  const flagged = edges.filter((e) => e.anomalous).length;
  show(target, el("p", { class: "muted" }, `${edges.length} edges, ${flagged} flagged as new`), picture);
}

// --- Reports -------------------------------------------------------------------------

// One section of a report: its title with the row count, what a row means, its table.
// Service names link to that service's trust view.
function reportSection(section, table) {
  const heading = el("h3", {}, `${section.title} (${section.rows.length}${section.truncated ? ", truncated" : ""})`);
  const body = section.rows.length ? el("div", { class: "result" }, table) : el("p", { class: "muted" }, "none");
  return el("div", { class: "report-section", "data-section": section.id }, heading, el("p", { class: "muted" }, section.description), body);
}

function serviceCell(name) {
  return el("a", { class: "link service-link", onclick: () => showTrust(name) }, name);
}

function reportTable(section) {
  const head = el("tr", {}, ...section.columns.map((name) => el("th", {}, name)));
  const body = section.rows.map((row) => el("tr", {}, ...section.columns.map((name) =>
    el("td", {}, name === "service" && row[name] ? serviceCell(row[name]) : cell(row[name])))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

async function showTrust(service) {
  switchTab("trust");
  if (service !== undefined) $("#trust-service").value = service;
  const params = new URLSearchParams({ since: $("#trust-since").value.trim() || "7d" });
  if ($("#trust-until").value.trim()) params.set("until", $("#trust-until").value.trim());
  const chosen = $("#trust-service").value.trim();
  if (chosen) params.set("service", chosen);
  const target = $("#trust");
  show(target, el("p", { class: "muted" }, "Loading…"));
  try {
    const report = await api(`/api/v1/reports/trust?${params}`);
    const scope = report.service ? `service ${report.service}` : "all services";
    show(target, el("p", { class: "muted", id: "trust-scope" }, `${scope}, ${report.from} to ${report.until}`),
      ...report.sections.map((section) => reportSection(section, reportTable(section))));
  } catch (error) {
    show(target, el("p", { class: "error" }, error.message));
  }
}

// The holders' table, sorted by a column on a header's click (numbers descending first).
function sortableTable(section, initial) {
  let sortBy = initial, descending = true;
  const table = el("table", { id: "privilege-summary" });
  const draw = () => {
    const rows = [...section.rows].sort((a, b) => {
      const x = a[sortBy], y = b[sortBy];
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return descending ? -order : order;
    });
    const head = el("tr", {}, ...section.columns.map((name) => el("th", {
      class: `sortable${name === sortBy ? (descending ? " sorted-desc" : " sorted-asc") : ""}`, "data-column": name,
      onclick: () => { descending = name === sortBy ? !descending : true; sortBy = name; draw(); },
    }, name)));
    const body = rows.map((row) => el("tr", {}, ...section.columns.map((name) => el("td", {}, cell(row[name])))));
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
  };
  draw();
  return table;
}

async function showPrivilege() {
  const params = new URLSearchParams({ since: $("#privilege-since").value.trim() || "30d" });
  if ($("#privilege-until").value.trim()) params.set("until", $("#privilege-until").value.trim());
  const target = $("#privilege");
  show(target, el("p", { class: "muted" }, "Loading…"));
  try {
    const report = await api(`/api/v1/reports/privilege?${params}`);
    show(target, el("p", { class: "muted" }, `${report.from} to ${report.until}`),
      ...report.sections.map((section) => reportSection(section,
        section.id === "summary" ? sortableTable(section, "scopes_unused") : reportTable(section))));
  } catch (error) {
    show(target, el("p", { class: "error" }, error.message));
  }
}

// --- SQL console ---------------------------------------------------------------------

async function runSql(event) {
  event.preventDefault();
  const target = $("#sql-result");
  show(target, el("p", { class: "muted" }, "Running…"));
  const started = performance.now();
  try {
    const data = await query($("#sql").value);
    const columns = (data.schema || []).map((field) => field.name);
    const took = Math.round(performance.now() - started);
    show(target, el("p", { class: "muted" }, `${data.row_count} rows${data.truncated ? " (truncated)" : ""} in ${took} ms`),
      el("div", { class: "result", id: "sql-table" }, table(data.rows, columns.length ? columns : undefined)));
  } catch (error) {
    show(target, el("p", { class: "error" }, error.message));
  }
}

// --- Wiring --------------------------------------------------------------------------

function switchTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((section) => { section.hidden = section.id !== `tab-${name}`; });
  if (name === "graph" && state.key) drawGraph();
}

function connect(event) {
  if (event) event.preventDefault();
  const key = $("#key").value.trim() || state.key;
  if (!key) return setStatus("enter an API key", true);
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("#key").value = "";
  setStatus("connecting…");
  pollAlerts();
}

document.querySelectorAll("#tabs button").forEach((button) => button.addEventListener("click", () => switchTab(button.dataset.tab)));
$("#key-form").addEventListener("submit", connect);
$("#principal-form").addEventListener("submit", (event) => { event.preventDefault(); showTimeline($("#principal").value.trim()); });
$("#graph-form").addEventListener("submit", (event) => { event.preventDefault(); drawGraph(); });
$("#sql-form").addEventListener("submit", runSql);
$("#trust-form").addEventListener("submit", (event) => { event.preventDefault(); showTrust(); });
$("#privilege-form").addEventListener("submit", (event) => { event.preventDefault(); showPrivilege(); });
if (state.key) connect();
