// The dashboard page: the fleet table (#/) and one actor (#/actor/ID), refreshed
// every few seconds from /api/actors and /api/actors/ID. Every value is put in the
// page as text (textContent), never as HTML.
"use strict";

const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(500, Number(params.get("refresh")) || 2000);
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function dash(value) { return value === null || value === undefined || value === "" ? "-" : String(value); }
function when(stamp) { return typeof stamp === "number" ? new Date(stamp * 1000).toLocaleString() : "-"; }
function age(seconds) {
  if (typeof seconds !== "number") return "-";
  if (seconds < 1) return seconds.toFixed(2) + " s";
  if (seconds < 120) return seconds.toFixed(1) + " s";
  if (seconds < 7200) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}
function statusBadge(row) {
  const status = row.paused ? "paused" : row.status;
  return el("span", {class: "status status-" + status, "data-field": "status"}, status);
}
function failureText(failure) { return failure ? failure.type.split(".").pop() + ": " + failure.message : ""; }

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function cell(field, value, cls) {
  return el("td", {class: cls, "data-field": field}, dash(value));
}

function renderFleet(rows) {
  const tbody = document.querySelector("#fleet tbody");
  const body = document.createDocumentFragment();
  for (const row of rows) {
    const link = el("a", {href: "#/actor/" + encodeURIComponent(row.id)}, row.id);
    body.append(el("tr", {"data-actor": row.id},
      el("td", {"data-field": "id"}, link),
      cell("class", row.class),
      el("td", {}, statusBadge(row)),
      cell("host", row.host),
      cell("pid", row.pid, "num"),
      cell("pending", row.pending, "num"),
      el("td", {class: "num", "data-field": "oldest_s"}, age(row.oldest_s)),
      cell("handled", row.handled, "num"),
      cell("failed", row.failed, row.failed ? "num bad" : "num"),
      cell("restarts", row.restarts, "num"),
      cell("dead", row.dead, row.dead ? "num bad" : "num"),
      el("td", {"data-field": "last_failure", class: "bad", title: row.last_failure ? when(row.last_failure.time) : ""},
         failureText(row.last_failure))));
  }
  tbody.replaceChildren(body);
  const running = rows.filter((r) => r.status === "running").length;
  document.getElementById("summary").textContent =
    rows.length + " actors, " + running + " running, " +
    rows.reduce((n, r) => n + (r.pending || 0), 0) + " messages pending";
}

function figures(pairs) {
  return el("dl", {class: "figures"}, ...pairs.map(([name, value, field]) =>
    el("div", {}, el("dt", {}, name), el("dd", {"data-field": field}, dash(value)))));
}

function tableOf(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, dash(c)))))));
}

function renderActor(actor) {
  const view = document.getElementById("actor-view");
  const parts = [
    el("p", {}, el("a", {href: "#/"}, "\u2190 all actors")),
    el("h2", {id: "actor-id", "data-actor": actor.id}, actor.id, " ", statusBadge(actor)),
    el("p", {class: "muted"}, dash(actor.class) + " \u00b7 system " + dash(actor.system) +
       " \u00b7 host " + dash(actor.host) + " \u00b7 pid " + dash(actor.pid)),
    figures([["handled", actor.handled, "handled"], ["failed", actor.failed, "failed"],
             ["redeliveries", actor.redeliveries, "redeliveries"], ["restarts", actor.restarts, "restarts"],
             ["pending", actor.pending, "pending"], ["oldest", age(actor.oldest_s), "oldest_s"],
             ["dead letters", actor.dead, "dead"]]),
  ];
  if (actor.status === "failed" && actor.last_error) parts.push(el("p", {class: "bad"}, "failed: " + actor.last_error));
  if (actor.paused) {
    parts.push(el("section", {id: "paused"}, el("h2", {}, "Paused"),
      el("p", {}, "since " + when(actor.paused.since) + " on message " + dash(actor.paused.msg_id) + ": " +
         dash(actor.paused.reason))));
  }
  if (actor.reminders.length) {
    parts.push(el("section", {id: "reminders"}, el("h2", {}, "Reminders"),
      tableOf(["name", "due", "in", "period", "payload"],
        actor.reminders.map((r) => [r.name, when(r.due), age(r.due_in_s), r.period, r.payload]))));
  }
  if (actor.failures.length) {
    parts.push(el("section", {id: "failures"}, el("h2", {}, "Recent failures (newest first)"),
      ...actor.failures.slice().reverse().map((f) => el("div", {class: "failure"},
        el("div", {}, el("strong", {class: "bad"}, f.type + ": " + f.message)),
        el("div", {class: "muted"}, when(f.time) + " \u00b7 message " + f.msg_id),
        el("pre", {}, f.traceback)))));
  }
  if (actor.dead_letters.length) {
    parts.push(el("section", {id: "dead-letters"}, el("h2", {}, "Dead letters"),
      tableOf(["id", "kind", "attempts", "buried", "reason", "body"],
        actor.dead_letters.map((d) => [d.id, d.kind, d.attempts, when(d.dead_at), d.reason, d.body]))));
  }
  if (actor.waiting.length) {
    parts.push(el("section", {id: "waiting"}, el("h2", {}, "Waiting messages"),
      tableOf(["box", "id", "kind", "created", "body"],
        actor.waiting.map((m) => [m.box, m.id, m.kind, m.created_at, m.body]))));
  }
  view.replaceChildren(...parts);
}

async function refresh() {
  clearTimeout(timer);
  const route = location.hash.match(/^#\/actor\/(.+)$/);
  const error = document.getElementById("error");
  try {
    if (route) {
      renderActor(await getJSON("/api/actors/" + route[1]));
    } else {
      renderFleet(await getJSON("/api/actors"));
    }
    document.getElementById("fleet-view").hidden = Boolean(route);
    document.getElementById("actor-view").hidden = !route;
    error.hidden = true;
    const updated = document.getElementById("updated");
    updated.textContent = "updated " + new Date().toLocaleTimeString();
    updated.dataset.updated = String(Date.now());
  } catch (err) {
    error.textContent = "could not refresh: " + err.message;
    error.hidden = false;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

async function start() {
  document.getElementById("interval").textContent = String(REFRESH_MS / 1000);
  try {
    const project = await getJSON("/api/project");
    document.getElementById("project").textContent =
      "project " + project.project_key + " \u00b7 " + project.backend + " \u00b7 " + project.host;
  } catch (err) { /* the table says what is wrong */ }
  window.addEventListener("hashchange", refresh);
  refresh();
}

start();
