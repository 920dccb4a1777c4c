/* datasette-claude-sessions, dashboards: starts datasette-dashboards' charts from a JSON
 * block instead of its inline script (the Content-Security-Policy allows no inline script
 * that changes per page), renders table and metric charts as text (datasette-dashboards
 * puts their values into innerHTML), and has vega evaluate its expressions with its
 * interpreter instead of `new Function` (no 'unsafe-eval' in the policy). */
(function () {
  "use strict";

  function frame() {
    var wrapper = document.createElement("div");
    wrapper.style.width = "100%";
    wrapper.style.height = "100%";
    wrapper.style.overflow = "auto";
    return wrapper;
  }

  async function rows(chart, queryString, absoluteUrl) {
    var response = await fetch(getDataUrl(chart, queryString, absoluteUrl));
    return response.json();
  }

  window.renderTableChart = async function (slug, chart, queryString, absoluteUrl) {
    var data = await rows(chart, queryString, absoluteUrl);
    var table = document.createElement("table");
    var head = table.createTHead().insertRow();
    var columns = data.rows && data.rows.length ? Object.keys(data.rows[0]) : [];
    columns.forEach(function (name) {
      var th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    });
    var body = table.createTBody();
    (data.rows || []).forEach(function (row) {
      var tr = body.insertRow();
      columns.forEach(function (name) {
        tr.insertCell().textContent = row[name] === null ? "" : String(row[name]);
      });
    });
    var wrapper = frame();
    wrapper.appendChild(table);
    document.getElementById("chart-" + slug).appendChild(wrapper);
    if (data.truncated) enableChartTooltip(slug);
  };

  window.renderMetricChart = async function (slug, chart, queryString, absoluteUrl) {
    var data = await rows(chart, queryString, absoluteUrl);
    var display = chart.display || {};
    var value = data.rows && data.rows.length ? data.rows[0][display.field] : "";
    var p = document.createElement("p");
    p.textContent = (display.prefix || "") + (value === null ? "" : value) + (display.suffix || "");
    p.style.fontSize = "2.2rem";
    p.style.fontWeight = "900";
    var wrapper = frame();
    wrapper.style.display = "flex";
    wrapper.style.flexDirection = "column";
    wrapper.style.justifyContent = "center";
    wrapper.style.alignItems = "center";
    wrapper.style.whiteSpace = "nowrap";
    wrapper.appendChild(p);
    document.getElementById("chart-" + slug).appendChild(wrapper);
    if (data.truncated) enableChartTooltip(slug);
  };

  var embed = window.vegaEmbed;
  if (embed) {
    window.vegaEmbed = function (el, spec, options) {
      return embed(el, spec, Object.assign({ ast: true, actions: false }, options || {}));
    };
  }

  document.querySelectorAll("[data-claude-sessions-fullscreen]").forEach(function (button) {
    button.addEventListener("click", function () { toggleFullscreen(); });
  });

  var block = document.getElementById("claude-sessions-dashboard");
  if (!block) return;
  var config = JSON.parse(block.textContent);
  Object.keys(config.charts).forEach(function (slug) {
    renderChart(slug, config.charts[slug], config.query_string, config.absolute_url, config.full_height);
  });
  if (config.autorefresh) autorefresh(config.autorefresh);
})();
