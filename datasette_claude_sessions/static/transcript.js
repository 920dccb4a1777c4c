/* datasette-claude-sessions transcript page (a static file: the Content-Security-Policy
 * allows script from this origin only, never inline).
 * - A link to #e<id> (a search hit, ?event=) opens every <details> around the target
 *   event and its own ones (tool call, result, thinking), then scrolls it into view.
 *   Runs on load and on hashchange.
 * - Jump buttons (data-jump = a class, data-step = 1 or -1) and the keys n / p (next and
 *   previous prompt) and e (next error) move to the next such element below (or above)
 *   the top of the window.
 * - Copy buttons (data-copy = an element id) copy that element's text. */
(function () {
  "use strict";

  function openAround(target) {
    for (var node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
  }

  function reveal() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!/^e\d+$/.test(id)) return;
    var target = document.getElementById(id);
    if (!target) return;
    openAround(target);
    target.querySelectorAll("details").forEach(function (d) {
      if (d.closest(".cs-event") === target) d.open = true;  // not nested subagents' events
    });
    target.scrollIntoView({ block: "start" });
  }

  function jump(cls, step) {
    var nodes = Array.prototype.slice.call(document.querySelectorAll(".cs-transcript ." + cls));
    if (!nodes.length) return;
    var here = 8;  // a little below the top edge: the element we are on counts as "here"
    var pick = null;
    if (step > 0) {
      for (var i = 0; i < nodes.length; i++) {
        if (nodes[i].getBoundingClientRect().top > here + 2) { pick = nodes[i]; break; }
      }
    } else {
      for (var j = nodes.length - 1; j >= 0; j--) {
        if (nodes[j].getBoundingClientRect().top < here - 2) { pick = nodes[j]; break; }
      }
    }
    if (!pick) return;
    openAround(pick);
    pick.scrollIntoView({ block: "start" });
    window.scrollBy(0, -here);
    var event = pick.closest(".cs-event");
    if (event) {
      document.querySelectorAll(".cs-current").forEach(function (n) { n.classList.remove("cs-current"); });
      event.classList.add("cs-current");
    }
  }

  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: copy by hand */ }
    }
  }

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function onClick(e) {
    // Datasette's base page closes every open <details> on a click outside it (meant
    // for its menus): inside the transcript that would fold every open diff and
    // command at each click, so clicks here stop before they reach <body>.
    e.stopPropagation();
    var button = e.target.closest("button[data-jump], button[data-copy]");
    if (!button) return;
    if (button.hasAttribute("data-jump")) {
      jump(button.getAttribute("data-jump"), parseInt(button.getAttribute("data-step"), 10) || 1);
    } else {
      copy(button);
    }
  }

  function listen() {
    document.querySelectorAll(".cs-transcript, .cs-nav, .cs-session-meta, #live-events")
      .forEach(function (area) { area.addEventListener("click", onClick); });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.key === "n") jump("cs-prompt", 1);
    else if (e.key === "p") jump("cs-prompt", -1);
    else if (e.key === "e") jump("cs-status-error", 1);
  });

  function start() {
    listen();
    reveal();
  }

  window.addEventListener("hashchange", reveal);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
