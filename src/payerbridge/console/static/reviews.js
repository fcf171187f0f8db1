// The review case page from the keyboard (the form works without it):
// j/k choose a candidate, a accepts the chosen one (if the engine proposed it), r rejects,
// both put the cursor in the reason box, where Enter confirms (Shift+Enter: a new line)
// and Escape leaves; q goes back to the queue.
"use strict";
(function () {
  var form = document.getElementById("decision");
  var reason = document.getElementById("reason");
  var hint = document.getElementById("key-hint");
  var candidates = Array.prototype.slice.call(document.querySelectorAll("section.candidate"));

  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function selected() {
    return candidates.findIndex(function (c) { return c.classList.contains("selected"); });
  }
  function select(index) {
    candidates.forEach(function (c, i) { c.classList.toggle("selected", i === index); });
    if (candidates[index]) { candidates[index].scrollIntoView({ block: "nearest" }); }
  }
  function say(text) { if (hint) { hint.textContent = text; } }
  function choose(decision) {
    if (!form) { return; }
    var radio = document.getElementById(decision === "accept" ? "decision-accept" : "decision-reject");
    if (decision === "accept") {
      var chosen = candidates[selected()];
      if (!chosen || chosen.getAttribute("data-proposed") !== "true") {
        say("Only a candidate the engine proposed can be accepted: choose one with j/k.");
        return;
      }
      document.getElementById("member").value = chosen.getAttribute("data-member");
      say("Accept " + chosen.getAttribute("data-member") + ": type the reason, Enter confirms.");
    } else {
      say("Reject: type the reason, Enter confirms.");
    }
    radio.checked = true;
    reason.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.target === reason) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        if (!form.querySelector("input[name=decision]:checked")) {
          say("Choose first: a accepts, r rejects.");
        } else if (!reason.value.trim()) {
          say("Say why: the reason is kept with the decision.");
        } else {
          form.requestSubmit();
        }
      } else if (event.key === "Escape") {
        reason.blur();
      }
      return;
    }
    if (typing(event)) { return; }
    if (event.key === "j" || event.key === "k") {
      var at = selected();
      var next = event.key === "j" ? Math.min(candidates.length - 1, at + 1) : Math.max(0, at - 1);
      select(next);
    } else if (event.key === "a" || event.key === "r") {
      event.preventDefault();
      choose(event.key === "a" ? "accept" : "reject");
    } else if (event.key === "q") {
      window.location.assign("/console/reviews");
    }
  });
}());
