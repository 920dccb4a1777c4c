/* datasette-claude-sessions transcript page: a link to #e<id> (a search hit, ?event=)
 * opens every <details> around the target event and its own ones (tool call, result,
 * thinking), then scrolls it into view.  Runs on load and on hashchange. */
(function () {
  "use strict";

  function reveal() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!/^e\d+$/.test(id)) return;
    var target = document.getElementById(id);
    if (!target) return;
    for (var node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    target.querySelectorAll("details").forEach(function (d) {
      if (d.closest(".cs-event") === target) d.open = true;  // not nested subagents' events
    });
    target.scrollIntoView({ block: "start" });
  }

  window.addEventListener("hashchange", reveal);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", reveal);
  else reveal();
})();
