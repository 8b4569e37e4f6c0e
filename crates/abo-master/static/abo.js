// abo's status pages: live updates only; every page works without this script.
// - An element with `data-live` is the page's live fragment: on each `change` event of
//   /events, the page is fetched again with `X-Abo-Fragment` and the fragment replaced.
// - A `pre[data-live-log=URL]` follows a running log: each `lines` event carries HTML
//   (escaped and coloured by the master) that is appended; `end` closes the stream.
(function () {
  "use strict";

  function refreshFragment() {
    var old = document.getElementById("live");
    if (!old) { return; }
    fetch(window.location.href, {
      headers: { "X-Abo-Fragment": "1" },
      credentials: "same-origin"
    }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.text();
    }).then(function (html) {
      var t = document.createElement("template");
      t.innerHTML = html;
      var fresh = t.content.getElementById ? t.content.getElementById("live") : t.content.querySelector("#live");
      var current = document.getElementById("live");
      if (fresh && current) { current.replaceWith(fresh); }
    }).catch(function () { /* the next change tries again */ });
  }

  function followChanges() {
    if (!document.querySelector("[data-live]") || !window.EventSource) { return; }
    var timer = null;
    var es = new EventSource("/events");
    es.addEventListener("change", function () {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; refreshFragment(); }, 300);
    });
  }

  function followLog(pre) {
    var url = pre.getAttribute("data-live-log");
    if (!url || !window.EventSource) { return; }
    var es = new EventSource(url);
    es.addEventListener("lines", function (e) {
      var nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      pre.insertAdjacentHTML("beforeend", JSON.parse(e.data));
      if (nearBottom) { window.scrollTo(0, document.body.scrollHeight); }
    });
    es.addEventListener("end", function () {
      es.close();
      pre.classList.add("ended");
    });
  }

  function start() {
    followChanges();
    var logs = document.querySelectorAll("pre[data-live-log]");
    for (var i = 0; i < logs.length; i++) { followLog(logs[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
