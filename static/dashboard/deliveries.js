// Deliveries charts: one JSON fetch, five Plotly charts. CSV links export exactly what each chart shows.
(function () {
  "use strict";
  const root = document.getElementById("charts");
  if (!root) return;
  const layout = (extra) => Object.assign({
    margin: {l: 48, r: 12, t: 8, b: 40}, height: 280, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: {family: "system-ui, sans-serif", size: 12, color: "#334155"}, legend: {orientation: "h", y: -0.2},
    xaxis: {gridcolor: "#e2e8f0"}, yaxis: {gridcolor: "#e2e8f0", rangemode: "tozero"},
  }, extra || {});
  const config = {displaylogo: false, responsive: true};
  const colors = {sent: "#2563eb", delivered: "#16a34a", opened: "#9333ea", failed: "#dc2626"};

  root.querySelectorAll("a.csv").forEach((a) => { a.href = root.dataset.csv + "&chart=" + a.dataset.chart; });

  fetch(root.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}})
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(draw)
    .catch((err) => { document.getElementById("charts-loading").textContent = "Could not load chart data: " + err.message; });

  function draw(d) {
    document.getElementById("charts-loading").hidden = true;
    const x = d.buckets;
    const total = Object.values(d.totals).reduce((a, b) => a + b, 0);
    document.getElementById("charts-empty").hidden = total > 0;
    const xaxisType = {xaxis: {type: "date", gridcolor: "#e2e8f0"}};

    Plotly.newPlot("chart-funnel", ["sent", "delivered", "opened"].map((s) => ({
      type: "bar", name: s, x: x, y: d.funnel[s], marker: {color: colors[s]},
    })), layout(Object.assign({barmode: "group"}, xaxisType)), config);

    const platforms = Object.keys(d.rate_by_platform);
    Plotly.newPlot("chart-rate_by_platform", platforms.map((p) => ({
      type: "scatter", mode: "lines+markers", name: p, x: x, y: d.rate_by_platform[p], connectgaps: false,
    })), layout(Object.assign({yaxis: {tickformat: ".0%", range: [0, 1.05], gridcolor: "#e2e8f0"}}, xaxisType)), config);

    const codes = Object.keys(d.errors);
    Plotly.newPlot("chart-errors", [{
      type: "bar", orientation: "h", x: codes.map((c) => d.errors[c]), y: codes, marker: {color: colors.failed},
    }], layout({margin: {l: 170, r: 12, t: 8, b: 40}, yaxis: {automargin: true},
      annotations: codes.length ? [] : [{text: "no errors in this range", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}]}), config);

    const lat = [];
    const stageName = {accept_ms: "commit → provider accepted", deliver_ms: "commit → device delivered"};
    Object.keys(d.latency).forEach((m) => ["p50", "p90", "p99"].forEach((p) => lat.push({
      type: "scatter", mode: "lines+markers", name: stageName[m] + " " + p, x: x, y: d.latency[m][p],
      line: {dash: p === "p50" ? "solid" : p === "p90" ? "dot" : "dash", color: m === "accept_ms" ? colors.sent : colors.delivered},
    })));
    Plotly.newPlot("chart-latency", lat, layout(Object.assign({yaxis: {type: "log", dtick: 1, gridcolor: "#e2e8f0", title: {text: "ms (bucket upper edge)"}}}, xaxisType)), config);

    const mpp = d.messages_per_push.counts;
    Plotly.newPlot("chart-messages_per_push", [{
      type: "bar", x: Object.keys(mpp), y: Object.values(mpp), marker: {color: "#0891b2"},
    }], layout({xaxis: {type: "category", title: {text: "messages coalesced into one push"}}}), config);

    const t = d.totals;
    const pct = (a, b) => (b ? (100 * a / b).toFixed(1) + " %" : "—");
    const s = d.latency_summary || {};
    const ms = (v) => (v == null ? "—" : "≤ " + v + " ms");
    document.getElementById("totals").innerHTML = [
      ["sent", t.sent], ["delivered", t.delivered + " (" + pct(t.delivered, t.sent) + ")"],
      ["opened", t.opened + " (" + pct(t.opened, t.delivered) + ")"], ["failed", t.failed + " (" + pct(t.failed, t.sent + t.failed) + ")"],
      ["accept p50 / p99", ms(s.accept_ms && s.accept_ms.p50) + " / " + ms(s.accept_ms && s.accept_ms.p99)],
      ["deliver p50 / p99", ms(s.deliver_ms && s.deliver_ms.p50) + " / " + ms(s.deliver_ms && s.deliver_ms.p99)],
      ["messages per push (mean)", d.messages_per_push.mean == null ? "—" : d.messages_per_push.mean],
    ].map(([k, v]) => "<div><span>" + k + "</span><strong>" + v + "</strong></div>").join("");
    root.dataset.rendered = "1";
  }
})();
