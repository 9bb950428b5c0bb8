// Staff live feed: websocket with cursor backfill (?since=), filters, pause/resume and events/s.
(function () {
  "use strict";
  const table = document.getElementById("feed");
  if (!table) return;
  const rows = document.getElementById("feed-rows");
  const status = document.getElementById("feed-status");
  const rateEl = document.getElementById("feed-rate");
  const bufferedEl = document.getElementById("feed-buffered");
  const pauseBtn = document.getElementById("feed-pause");
  const filters = document.getElementById("feed-filters");
  const MAX_ROWS = 500;
  let lastId = parseInt(table.dataset.since || "0", 10);
  let socket = null, paused = false, buffered = [], arrivals = [], retry = 0;

  function url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({since: String(lastId)});
    const org = filters.organization.value, type = filters.event_type.value.trim();
    if (org) q.set("organization", org);
    if (type) q.set("types", type.split(/[\s,]+/).filter(Boolean).join(","));
    return proto + "//" + location.host + table.dataset.wsPath + "?" + q.toString();
  }

  function connect() {
    const s = new WebSocket(url());
    socket = s;
    s.onopen = () => { retry = 0; status.textContent = "live"; status.className = "status live"; };
    s.onmessage = (m) => {
      let data;
      try { data = JSON.parse(m.data); } catch (e) { return; }
      if (data && data.type === "event") receive(data.event);  // {"type": "event", "backlog": bool, "event": {...}}
    };
    s.onclose = () => {
      if (s !== socket) return;  // replaced by a reconnect with new filters
      status.textContent = "disconnected, retrying…"; status.className = "status down";
      setTimeout(connect, Math.min(10000, 500 * 2 ** retry++));
    };
  }

  function receive(e) {
    if (e == null || typeof e.id !== "number") return;
    if (e.id <= lastId) return;  // backfill and live may overlap
    lastId = e.id;
    arrivals.push(Date.now());
    if (paused) { buffered.push(e); bufferedEl.textContent = buffered.length + " buffered"; return; }
    render(e);
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;  // textContent: payloads come from clients, never inject them as HTML
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function render(e) {
    const tr = document.createElement("tr");
    tr.className = "new";
    cell(tr, e.id);
    cell(tr, (e.created_at || "").slice(11, 23));
    cell(tr, e.organization_id == null ? "system" : e.organization_id);
    const td = document.createElement("td"); const code = document.createElement("code");
    code.textContent = e.event_type; td.appendChild(code); tr.appendChild(td);
    cell(tr, e.entity_type + " " + String(e.entity_id).slice(0, 13));
    cell(tr, JSON.stringify(e.payload), "payload");
    rows.appendChild(tr);
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.firstChild);
    document.getElementById("feed-empty").hidden = true;
    tr.scrollIntoView({block: "nearest"});
  }

  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    if (!paused) { buffered.forEach(render); buffered = []; bufferedEl.textContent = ""; }
  });
  filters.addEventListener("change", () => {
    // New filters: reconnect from the latest id seen so nothing is replayed or skipped.
    rows.innerHTML = ""; const old = socket; connect(); if (old) old.close();
  });
  setInterval(() => {
    const cutoff = Date.now() - 5000;
    arrivals = arrivals.filter((t) => t >= cutoff);
    rateEl.textContent = (arrivals.length / 5).toFixed(1);
  }, 1000);
  connect();
})();
