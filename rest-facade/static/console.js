// GateKey console: small touches on top of server-rendered pages, none of them needed
// to sign in or to download a profile.
// - <time data-local> shows in the browser's time zone, with a relative hint
//   ("in 23 h", "5 min ago") when it also has data-relative;
// - buttons with data-copy="<selector>" copy that element's text.
(function () {
  "use strict";

  function relative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    var past = seconds < 0;
    var value = Math.abs(seconds);
    var text;
    if (value < 45) {
      return past ? "just now" : "in a moment";
    } else if (value < 3600) {
      text = Math.round(value / 60) + " min";
    } else if (value < 172800) {
      text = Math.round(value / 3600) + " h";
    } else {
      text = Math.round(value / 86400) + " days";
    }
    return past ? text + " ago" : "in " + text;
  }

  function localise(root) {
    var times = (root || document).querySelectorAll("time[data-local]");
    for (var i = 0; i < times.length; i++) {
      var element = times[i];
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) {
        continue;
      }
      var local = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      element.title = date.toISOString();
      element.textContent = element.hasAttribute("data-relative") ? relative(date) + " (" + local + ")" : local;
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) {
      return;
    }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (source) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function (event) { localise(event.target); });
  setInterval(function () { localise(document); }, 30000);
})();
