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
      if (!fresh || !current) { return; }
      current.replaceWith(fresh);
      addNewLogs(fresh);
    }).catch(function () { /* the next change tries again */ });
  }

  // The fragment lists the logs being written (`.live-index span`); one the page does not
  // show yet (its step started after the page was rendered) gets a block of its own.
  function addNewLogs(fragment) {
    var section = document.querySelector("section.live-logs");
    if (!section) { return; }
    var index = fragment.querySelectorAll(".live-index span[data-log-key]");
    for (var i = 0; i < index.length; i++) {
      var key = index[i].getAttribute("data-log-key");
      var shown = section.querySelectorAll("pre[data-log-key]");
      var known = false;
      for (var j = 0; j < shown.length; j++) {
        if (shown[j].getAttribute("data-log-key") === key) { known = true; break; }
      }
      if (known) { continue; }
      var h3 = document.createElement("h3");
      var a = document.createElement("a");
      a.setAttribute("href", index[i].getAttribute("data-href"));
      a.textContent = index[i].textContent;
      h3.appendChild(a);
      var pre = document.createElement("pre");
      pre.className = "log";
      pre.setAttribute("data-log-key", key);
      pre.setAttribute("data-live-log", index[i].getAttribute("data-live-log"));
      section.appendChild(h3);
      section.appendChild(pre);
      followLog(pre);
    }
  }

  function followChanges() {
    if (!document.querySelector("[data-live]") || !window.EventSource) { return; }
    var timer = null;
    function soon() {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; refreshFragment(); }, 300);
    }
    var es = new EventSource("/events");
    // /events compares with the state when the stream opens: a change between the page's
    // rendering and then (or while the stream reconnects) sends no event, so refresh once
    // the stream is open.
    es.addEventListener("open", soon);
    es.addEventListener("change", soon);
  }

  function followLog(pre) {
    var url = pre.getAttribute("data-live-log");
    if (!url || !window.EventSource || pre.getAttribute("data-following")) { return; }
    pre.setAttribute("data-following", "1");
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
