// slabot staff dashboard: live countdowns to the first-response deadlines (no build step, no libraries).
// Every element with data-due="ISO 8601" shows the time left, updated every second; its row's
// data-due-state becomes "soon" within the due-soon window and "breached" past the deadline, which the
// CSS colours. Time is the server's: the page carries the server's clock in <body data-server-now>.
(function () {
  "use strict";
  var body = document.body;
  var serverNow = Date.parse(body.dataset.serverNow || "");
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
  var soon = Number(body.dataset.soonSeconds || 7200) * 1000;
  var overdue = body.dataset.overdue || "overdue";
  var dayUnit = body.dataset.days || "d";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var days = Math.floor(s / 86400);
    s -= days * 86400;
    var h = Math.floor(s / 3600);
    s -= h * 3600;
    var m = Math.floor(s / 60);
    s -= m * 60;
    return (days ? days + dayUnit + " " : "") + pad(h) + ":" + pad(m) + ":" + pad(s);
  }

  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Date.parse(el.dataset.due) - now;
      if (isNaN(left)) { return; }
      var state = left <= 0 ? "breached" : (left <= soon ? "soon" : "ok");
      el.textContent = left <= 0 ? "−" + span(left) + " " + overdue : span(left);
      var holder = el.closest("[data-due-state]");
      if (holder && holder.dataset.dueState !== state) { holder.dataset.dueState = state; }
    });
  }

  tick();
  window.setInterval(tick, 1000);
}());
