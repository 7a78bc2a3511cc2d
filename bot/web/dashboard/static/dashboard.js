// slabot staff dashboard: live countdowns to the first-response deadlines (no build step, no libraries).
// Every element with data-due="ISO 8601" shows the time left, updated every second; its row's
// data-due-state becomes "soon" within the due-soon window and "breached" past the deadline, which the
// CSS colours. Time is the server's: the page carries the server's clock in <body data-server-now>.
// Live: every few seconds it asks /dashboard/api/live whether the queue (or this ticket) changed; when it did,
// it fetches the page again and swaps only the parts marked data-live-part whose HTML changed (no reload, no
// flicker), never one the user is typing in. On a ticket it shows who else has it open and whether they type.
// Without JavaScript every page and form works as it is.
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

  var live = body.dataset.live;
  var refHolder = document.querySelector("[data-live-ref]");
  var ref = refHolder ? refHolder.dataset.liveRef : "";
  var presence = document.getElementById("presence");
  var stamp = null;
  var typingUntil = 0;
  if (!live || !window.fetch || !window.DOMParser) { return; }

  document.addEventListener("input", function (event) {
    if (event.target && event.target.closest && event.target.closest("form")) { typingUntil = Date.now() + 8000; }
  });

  function changed(field) {
    if (field.type === "checkbox" || field.type === "radio") { return field.checked !== field.defaultChecked; }
    if (field.options) {
      for (var k = 0; k < field.options.length; k += 1) {
        if (field.options[k].selected !== field.options[k].defaultSelected) { return true; }
      }
      return false;
    }
    return field.value !== field.defaultValue;
  }

  function busy(part) {
    var focused = document.activeElement;
    if (focused && focused !== document.body && part.contains(focused)) { return true; }
    // every field the user changed (a text, a number, a choice made in a list), not the buttons and hidden ones
    var fields = part.querySelectorAll("textarea, select, input:not([type=hidden]):not([type=submit]):not([type=button])");
    for (var i = 0; i < fields.length; i += 1) { if (changed(fields[i])) { return true; } }
    return false;
  }

  function refresh() {
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live": "1"}})
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var next = part.id ? fresh.getElementById(part.id) : null;
          if (next && next.innerHTML !== part.innerHTML && !busy(part)) {
            part.innerHTML = next.innerHTML;
            if (next.dataset.dueState) { part.dataset.dueState = next.dataset.dueState; }
          }
        });
        tick();
      })
      .catch(function () { /* the next round tries again */ });
  }

  function show(others) {
    if (!presence) { return; }
    if (!others.length) { presence.hidden = true; presence.textContent = ""; return; }
    presence.textContent = (body.dataset.hereToo || "") + " " + others.map(function (other) {
      return other.name + (other.typing ? " (" + (body.dataset.typing || "…") + ")" : "");
    }).join(", ");
    presence.hidden = false;
  }

  function poll() {
    var url = live + "?typing=" + (Date.now() < typingUntil ? "1" : "0") + (ref ? "&ref=" + encodeURIComponent(ref) : "");
    fetch(url, {credentials: "same-origin"})
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        if (stamp !== null && data.stamp !== stamp) { refresh(); }
        stamp = data.stamp;
        show(data.others || []);
      })
      .catch(function () { /* the next round tries again */ });
  }

  poll();
  window.setInterval(poll, Math.max(1, Number(body.dataset.poll || 4)) * 1000);
}());
