// Live updates of the overview and of a policy's page: while a run is
// going, poll the overview's JSON and update the states and the progress.
// The pages read fine without this script.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live) { return; }
  var url = live.getAttribute("data-live");
  var onePolicy = live.id === "policy-facts" ? live.getAttribute("data-policy") : null;
  var stateEl = document.querySelector("#state .state");
  var wasRunning = !!stateEl && stateEl.textContent === "Running";

  function text(el, s) { if (el && el.textContent !== s) { el.textContent = s; } }

  function stateBadge(cell, p) {
    if (!cell) { return; }
    var badge = cell.querySelector(".state");
    if (!badge) { return; }
    text(badge, p.state);
    badge.className = "state state-" + p.state.toLowerCase();
  }

  function fmtTime(s) {
    if (!s) { return "—"; }
    return s.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "Z");
  }

  function showProgress(items) {
    var sec = document.getElementById("progress");
    var list = document.getElementById("progress-list");
    if (!sec || !list) { return; }
    sec.hidden = items.length === 0;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    items.forEach(function (it) {
      var li = document.createElement("li");
      li.textContent = it.item + ": " + it.text + " ";
      if (it.total > 0) {
        var bar = document.createElement("progress");
        bar.max = 100; bar.value = it.percent;
        bar.textContent = it.percent + "%";
        li.appendChild(bar);
      }
      list.appendChild(li);
    });
  }

  function update(data) {
    var running = false;
    data.policies.forEach(function (p) {
      if (p.state === "Running") { running = true; }
      if (onePolicy) {
        if (p.name !== onePolicy) { return; }
        stateBadge(document.getElementById("state"), p);
        if (wasRunning && p.state !== "Running") { window.location.reload(); }
        wasRunning = p.state === "Running";
        return;
      }
      var row = document.getElementById("p-" + p.name);
      if (!row) { return; }
      stateBadge(row.querySelector(".cell-state"), p);
      text(row.querySelector(".cell-last"), fmtTime(p.lastSuccess));
      text(row.querySelector(".cell-age"), p.age || "");
      text(row.querySelector(".cell-size"), p.sizeText);
    });
    showProgress(data.progress || []);
    document.body.setAttribute("data-running", running ? "true" : "false");
    return running;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) { var running = update(data); setTimeout(poll, running ? 1000 : 5000); })
      .catch(function () { setTimeout(poll, 10000); });
  }
  poll();
})();
