// Staff live feed: websocket with cursor backfill (?since=), filters, pause/resume and events/s.
(function () {
  "use strict";
  const table = document.getElementById("feed");
  if (!table) return;
  const rows = document.getElementById("feed-rows");
  const wrap = document.getElementById("feed-wrap");
  const status = document.getElementById("feed-status");
  const rateEl = document.getElementById("feed-rate");
  const bufferedEl = document.getElementById("feed-buffered");
  const pauseBtn = document.getElementById("feed-pause");
  const filters = document.getElementById("feed-filters");
  const MAX_ROWS = 500;
  const SEEN_MAX = 5000;
  // lastId is the reconnect cursor (highest id seen); seen dedupes, because ids can arrive out of order
  // (events commit in a different order than their ids were taken) and backfill and live may overlap.
  let lastId = parseInt(table.dataset.since || "0", 10);
  let socket = null, paused = false, buffered = [], arrivals = [], retry = 0;
  const seen = new Set(), seenOrder = [];
  for (const tr of rows.querySelectorAll("tr[data-id]")) { seen.add(Number(tr.dataset.id)); seenOrder.push(Number(tr.dataset.id)); }

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
      // {"type": "events", "backlog": bool, "events": [...]}: many events per frame; "event" is the single form.
      if (data && data.type === "events" && Array.isArray(data.events)) receiveMany(data.events);
      else if (data && data.type === "event") receiveMany([data.event]);
    };
    s.onclose = (ev) => {
      if (s !== socket) return;  // replaced by a reconnect with new filters
      status.textContent = "disconnected, retrying…"; status.className = "status down";
      // 4409: this browser fell too far behind the live stream; catch up at once from the cursor.
      const wait = ev.code === 4409 ? 0 : Math.min(10000, 500 * 2 ** retry++);
      setTimeout(connect, wait);
    };
  }

  function receiveMany(events) {
    const fresh = [];
    for (const e of events) {
      if (e == null || typeof e.id !== "number" || seen.has(e.id)) continue;
      seen.add(e.id); seenOrder.push(e.id);
      if (seenOrder.length > SEEN_MAX) seen.delete(seenOrder.shift());
      if (e.id > lastId) lastId = e.id;
      arrivals.push(Date.now());
      fresh.push(e);
    }
    if (!fresh.length) return;
    if (paused) {
      buffered.push(...fresh);
      if (buffered.length > MAX_ROWS) buffered = buffered.slice(-MAX_ROWS);
      bufferedEl.textContent = buffered.length + " buffered";
      return;
    }
    renderAll(fresh);
  }

  function renderAll(events) {
    if (!events.length) return;
    // Follow the stream only while the reader is at the bottom; someone scrolled up to read is not yanked away.
    const following = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 40;
    const fragment = document.createDocumentFragment();
    for (const e of events.slice(-MAX_ROWS)) fragment.appendChild(row(e));
    rows.appendChild(fragment);
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.firstChild);
    document.getElementById("feed-empty").hidden = true;
    if (following) wrap.scrollTop = wrap.scrollHeight;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;  // textContent: payloads come from clients, never inject them as HTML
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function row(e) {
    const tr = document.createElement("tr");
    tr.className = "new";
    cell(tr, e.id);
    cell(tr, (e.created_at || "").slice(11, 23));
    cell(tr, e.organization_id == null ? "system" : e.organization_id);
    const td = document.createElement("td"); const code = document.createElement("code");
    code.textContent = e.event_type; td.appendChild(code); tr.appendChild(td);
    cell(tr, e.entity_type + " " + String(e.entity_id).slice(0, 13));
    cell(tr, JSON.stringify(e.payload), "payload");
    return tr;
  }

  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    if (!paused) { renderAll(buffered); buffered = []; bufferedEl.textContent = ""; }
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
