/* datasette-claude-sessions, table pages: the list of column descriptions (from
 * metadata.yml) folds into a closed <details>, and each description becomes the tooltip
 * of its column header, so the rows start near the top of the page. */
(function () {
  "use strict";

  function fold() {
    document.querySelectorAll("dl.column-descriptions").forEach(function (dl) {
      if (dl.parentElement && dl.parentElement.classList.contains("cs-column-descriptions")) return;
      var terms = dl.querySelectorAll("dt");
      terms.forEach(function (dt) {
        var dd = dt.nextElementSibling;
        if (!dd || dd.tagName !== "DD") return;
        document.querySelectorAll("th[data-column]").forEach(function (th) {
          if (th.getAttribute("data-column") === dt.textContent && !th.title) th.title = dd.textContent;
        });
      });
      var details = document.createElement("details");
      details.className = "cs-column-descriptions";
      var summary = document.createElement("summary");
      summary.textContent = "What the " + terms.length + " columns mean";
      dl.parentNode.insertBefore(details, dl);
      details.appendChild(summary);
      details.appendChild(dl);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fold);
  else fold();
})();
