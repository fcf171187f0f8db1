// The console's one script (progressive enhancement: every page works without it).
// - A form with data-confirm asks before it is sent.
// - "/" focuses the page's search field (the element with data-search-focus).
// - "j"/"k" move through the rows of a list with data-keyboard-list, Enter opens one.
"use strict";
(function () {
  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event)) { return; }
    if (event.key === "/") {
      var search = document.querySelector("[data-search-focus]");
      if (search) { event.preventDefault(); search.focus(); }
      return;
    }
    var list = document.querySelector("[data-keyboard-list]");
    if (!list) { return; }
    var rows = Array.prototype.slice.call(list.querySelectorAll("tbody tr[data-href]"));
    if (!rows.length) { return; }
    var at = rows.findIndex(function (row) { return row.classList.contains("selected"); });
    if (event.key === "j" || event.key === "k") {
      var next = event.key === "j" ? Math.min(rows.length - 1, at + 1) : Math.max(0, at - 1);
      if (at >= 0) { rows[at].classList.remove("selected"); }
      rows[next].classList.add("selected");
      rows[next].scrollIntoView({ block: "nearest" });
    } else if (event.key === "Enter" && at >= 0) {
      window.location.assign(rows[at].getAttribute("data-href"));
    }
  });
}());
