/* Live updates for datasette-claude-sessions pages (Server-Sent Events).
 *
 * Any element with data-claude-sessions-live="<url of /-/claude-sessions/live?...>" opens
 * one EventSource.  What arrives:
 *   event: run      a finished sync pass   -> new row at the top of #recent-runs
 *   event: figures  {html} after each pass -> #cs-live-figures (last pass and figures)
 *   event: sidecar  the watch sidecar      -> #cs-sidecar
 *   event: events   new events of ?session -> (JSON, announced only)
 *   event: html     {html} of those events -> appended to #live-events, drawn by the
 *                   server with the transcript page's templates
 * Each arrival is also dispatched on document as a CustomEvent "claude-sessions:<name>"
 * (detail = the JSON payload); call preventDefault() on it to render it yourself.
 * A form.cs-sync is submitted with fetch so the page stays put and shows the result.
 */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // 1,540 like the server renders numbers.
  function num(n) {
    return typeof n === "number" ? n.toLocaleString("en") : (n === null || n === undefined ? "" : String(n));
  }

  function bytes(n) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    n = Number(n || 0);
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + " bytes" : n.toFixed(1) + " " + units[i];
  }

  // "2025-07-01 14:03:09 UTC" like the server renders it; the ISO value in the title.
  function when(iso) {
    var node = el("time", { datetime: iso || "", title: iso || "" });
    var d = iso ? new Date(iso) : null;
    node.textContent = d && !isNaN(d) ? d.toISOString().slice(0, 19).replace("T", " ") + " UTC" : (iso || "");
    return node;
  }

  function changed(run) {
    return Number(run.files_changed) > 0 || Number(run.lines_added) > 0 ||
      Number(run.errors) > 0 || !!run.error;
  }

  function announce(name, payload) {
    var ev = new CustomEvent("claude-sessions:" + name, { detail: payload, cancelable: true });
    return document.dispatchEvent(ev);  // false when a listener called preventDefault()
  }

  function showRun(run, source) {
    var body = document.querySelector("#recent-runs tbody");
    if (!body) return;
    // The table shows the last pass and the passes that changed something: a previous
    // last pass that found nothing becomes one more in the count above the table.
    var top = body.rows[0];
    if (top && top.getAttribute("data-quiet")) {
      body.deleteRow(0);
      var quiet = document.getElementById("cs-quiet-runs");
      if (quiet) {
        var count = Number(quiet.getAttribute("data-count") || 0) + 1;
        quiet.setAttribute("data-count", count);
        quiet.firstChild.textContent = "The last pass and the passes that changed something; " +
          count.toLocaleString("en") + (count === 1 ? " other pass" : " other passes") +
          " found nothing new.";
      }
    }
    var tr = el("tr", { "data-run-id": run.id });
    if (!changed(run)) tr.setAttribute("data-quiet", "1");
    var first = el("td");
    var base = source.getAttribute("data-runs-table");
    first.appendChild(base ? el("a", { href: base + "/" + run.id }, run.id) : document.createTextNode(run.id));
    tr.appendChild(first);
    tr.appendChild(el("td", {}, run.trigger));
    var started = el("td", { "class": "cs-nowrap" });
    started.appendChild(when(run.started_at));
    tr.appendChild(started);
    tr.appendChild(el("td", { "class": "cs-num" }, Number(run.seconds || 0).toFixed(2)));
    tr.appendChild(el("td", { "class": "cs-num" }, num(run.files_changed)));
    tr.appendChild(el("td", { "class": "cs-num" }, num(run.lines_added)));
    tr.appendChild(el("td", { "class": "cs-num" }, bytes(run.bytes_read)));
    tr.appendChild(el("td", { "class": "cs-num" }, num(run.errors) + (run.error ? " " + run.error : "")));
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 20) body.deleteRow(body.rows.length - 1);
  }

  function showSidecar(sidecar) {
    var node = document.getElementById("cs-sidecar");
    if (!node) return;
    if (node.getAttribute("data-alive") === String(sidecar.alive)) {
      var state = document.getElementById("cs-sidecar-state");
      if (state && sidecar.state) state.textContent = sidecar.state;
      return;
    }
    node.setAttribute("data-alive", String(sidecar.alive));
    node.textContent = sidecar.alive
      ? "● The watch sidecar (pid " + sidecar.pid + " on " + sidecar.host + ") is running: " + sidecar.state + "."
      : "● The watch sidecar is not running" + (sidecar.state ? " (state " + sidecar.state + ")" : "") + ".";
    node.className = sidecar.alive ? "cs-ok" : "cs-bad";
  }

  // New lines arrive drawn by the server, with the templates of the transcript page.
  function showLines(fragment) {
    var box = document.getElementById("live-events");
    if (!box) return;
    box.insertAdjacentHTML("beforeend", fragment.html);
  }

  // The status page's last pass and figures, drawn by the server after every pass.
  function showFigures(figures) {
    var box = document.getElementById("cs-live-figures");
    if (box) box.innerHTML = figures.html;
  }

  function listen(source) {
    var stream = new EventSource(source.getAttribute("data-claude-sessions-live"));
    stream.addEventListener("run", function (m) {
      var run = JSON.parse(m.data);
      if (announce("run", run)) showRun(run, source);
    });
    stream.addEventListener("sidecar", function (m) {
      var sidecar = JSON.parse(m.data);
      if (announce("sidecar", sidecar)) showSidecar(sidecar);
    });
    stream.addEventListener("events", function (m) {
      announce("events", JSON.parse(m.data));  // the lines themselves come as "html"
    });
    stream.addEventListener("html", function (m) {
      var fragment = JSON.parse(m.data);
      if (announce("html", fragment)) showLines(fragment);
    });
    stream.addEventListener("figures", function (m) {
      var figures = JSON.parse(m.data);
      if (announce("figures", figures)) showFigures(figures);
    });
  }

  function enhanceSyncForm(form) {
    var result = form.querySelector("#cs-sync-result");
    var button = form.querySelector("button");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      button.disabled = true;
      if (result) result.textContent = "Syncing…";
      fetch(form.action, {
        method: "POST",
        headers: { "Accept": "application/json" },
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin"
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (result) result.textContent = data.message || data.error || "";
      }).catch(function (err) {
        if (result) result.textContent = "Sync failed: " + err;
      }).then(function () { button.disabled = false; });
    });
  }

  function start() {
    document.querySelectorAll("[data-claude-sessions-live]").forEach(listen);
    document.querySelectorAll("form.cs-sync").forEach(enhanceSyncForm);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
