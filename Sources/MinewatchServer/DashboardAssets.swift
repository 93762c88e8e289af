/// The dashboard's page and script, compiled into the binary: no CDN, no external asset, no
/// resource bundle to lose. The script draws with SVG and reads the JSON API (relative URLs; a
/// `#token=...` in the page's address is sent as the bearer token).
enum DashboardAssets {
    static let html = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>minewatch</title>
    <style>
    body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
    header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
    header h1 { font-size: 18px; margin: 0; }
    header span { color: #b9c0cf; }
    main { padding: 16px 20px; display: grid; grid-template-columns: minmax(560px, 1fr) minmax(420px, 1fr); gap: 16px; }
    section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 12px 14px; }
    section.wide { grid-column: 1 / -1; }
    h2 { font-size: 15px; margin: 0 0 8px; }
    p.note { color: #5b6475; margin: 0 0 8px; font-size: 13px; }
    svg text { font-size: 11px; fill: #5b6475; }
    .axis line, .axis path { stroke: #9aa3b2; }
    .grid { stroke: #eceff3; }
    .cpu-zone { fill: #fff4d6; }
    .cpu-zone-label { fill: #9a6b00; font-size: 12px; }
    circle.point { fill: #4a7bd0; fill-opacity: .75; stroke: #fff; stroke-width: 1; cursor: pointer; }
    circle.point.alerted { fill: #d8342c; fill-opacity: .9; stroke: #7a0f0a; stroke-width: 1.5; }
    circle.point.selected { stroke: #111; stroke-width: 3; }
    text.point-label { fill: #7a0f0a; font-weight: 600; }
    table { border-collapse: collapse; width: 100%; font-size: 13px; }
    th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eceff3; vertical-align: top; }
    th { color: #5b6475; font-weight: 600; }
    td.sev-critical, td.sev-high { color: #b3261e; font-weight: 600; }
    td.sev-medium { color: #9a6b00; }
    .evidence { color: #5b6475; font-size: 12px; }
    .series-line { fill: none; stroke-width: 1.5; }
    .alert-mark { stroke: #d8342c; stroke-width: 1.5; stroke-dasharray: 3 2; }
    #status { color: #b9c0cf; }
    code { font-size: 12px; }
    </style>
    </head>
    <body>
    <header><h1>minewatch</h1><span id="host"></span><span id="status">loading...</span></header>
    <main>
    <section>
    <h2>Containers: CPU against upload</h2>
    <p class="note">Each point is a running container. A CPU threshold only looks at the shaded band on the right; a bandwidth miner or a proxy node sits on the left, low on CPU and high on upload. Alerted containers are red, with the detector that fired.</p>
    <svg id="scatter" width="640" height="420" role="img" aria-label="CPU against upload per container"></svg>
    </section>
    <section>
    <h2 id="timeline-title">Timeline</h2>
    <p class="note" id="timeline-note">Select a container to see its CPU, upload, download and connections over the last hour, with its alerts.</p>
    <div id="timeline"></div>
    </section>
    <section class="wide">
    <h2>Alerts</h2>
    <table id="alerts"><thead><tr><th>time</th><th>severity</th><th>detector</th><th>container</th><th>summary and evidence</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="wide">
    <h2>Exceptions</h2>
    <table id="exceptions"><thead><tr><th>name</th><th>reason</th><th>where</th><th>alerts silenced</th></tr></thead><tbody></tbody></table>
    </section>
    </main>
    <script src="/dashboard.js"></script>
    </body>
    </html>
    """

    static let script = #"""
    "use strict";
    const NS = "http://www.w3.org/2000/svg";
    const token = (location.hash.match(/token=([^&]+)/) || [])[1];
    let selected = null;
    let containers = [];

    function api(path) {
      const headers = token ? { Authorization: "Bearer " + decodeURIComponent(token) } : {};
      return fetch(path, { headers }).then(r => r.ok ? r.json() : r.json().then(e => Promise.reject(e.error || r.status)));
    }
    function el(name, attrs, parent, text) {
      const e = document.createElementNS(NS, name);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      if (parent) parent.appendChild(e);
      return e;
    }
    function h(tag, text, cls) {
      const e = document.createElement(tag);
      if (text !== undefined) e.textContent = text;
      if (cls) e.className = cls;
      return e;
    }
    function rate(b) {
      if (b === null || b === undefined) return "-";
      const u = ["B/s", "kB/s", "MB/s", "GB/s"]; let i = 0;
      while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
      return (b >= 100 || i === 0 ? b.toFixed(0) : b.toFixed(1)) + " " + u[i];
    }
    function label(c) { return c.k8s && c.k8s.pod ? c.k8s.pod : (c.name || c.id.slice(0, 12)); }
    function clock(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }

    function drawScatter() {
      const svg = document.getElementById("scatter");
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
      const m = { l: 64, r: 16, t: 12, b: 40 };
      const maxCPU = Math.max(1, ...containers.map(c => c.cpuShare || 0)) * 1.05;
      const x = v => m.l + (Math.min(v, maxCPU) / maxCPU) * (W - m.l - m.r);
      const lo = 1, hi = 1e9;
      const y = v => { const l = Math.log10(Math.max(lo, Math.min(hi, v || lo))); return H - m.b - (l / 9) * (H - m.t - m.b); };
      el("rect", { class: "cpu-zone", x: x(0.8), y: m.t, width: x(maxCPU) - x(0.8), height: H - m.t - m.b }, svg);
      el("text", { class: "cpu-zone-label", x: x(maxCPU) - 4, y: m.t + 14, "text-anchor": "end" }, svg, "CPU thresholds look here");
      const ax = el("g", { class: "axis" }, svg);
      for (let e = 0; e <= 9; e += 1) {
        el("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(10 ** e), y2: y(10 ** e) }, ax);
        if (e % 3 === 0) el("text", { x: m.l - 6, y: y(10 ** e) + 4, "text-anchor": "end" }, ax, rate(10 ** e));
      }
      for (let v = 0; v <= maxCPU + 1e-9; v += maxCPU > 2 ? 1 : 0.25) {
        el("line", { class: "grid", x1: x(v), x2: x(v), y1: m.t, y2: H - m.b }, ax);
        el("text", { x: x(v), y: H - m.b + 14, "text-anchor": "middle" }, ax, Math.round(v * 100) + "%");
      }
      el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, ax);
      el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, ax);
      el("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, ax, "CPU (share of its limit, or of the host's cores)");
      el("text", { x: 12, y: (m.t + H - m.b) / 2, transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, ax, "upload (log)");
      const pts = el("g", { id: "points" }, svg);
      for (const c of containers) {
        const alerted = c.alerts.length > 0;
        const g = el("g", { class: "container", "data-id": c.id }, pts);
        const cx = x(c.cpuShare || 0), cy = y(c.uploadBytesPerSecond || 0);
        const p = el("circle", { class: "point" + (alerted ? " alerted" : "") + (selected === c.id ? " selected" : ""), cx, cy, r: alerted ? 7 : 5,
                                 "data-id": c.id, "data-name": label(c), "data-detectors": c.alerts.map(a => a.detector).join(" ") }, g);
        el("title", {}, p, `${label(c)}: CPU ${((c.cpuShare || 0) * 100).toFixed(1)}%, upload ${rate(c.uploadBytesPerSecond)}` +
           (alerted ? "\n" + c.alerts.map(a => `${a.severity} ${a.detector}: ${a.summary}`).join("\n") : ""));
        if (alerted) {
          el("text", { class: "point-label", x: cx + 10, y: cy + 4, "data-id": c.id }, g,
             label(c) + ": " + [...new Set(c.alerts.map(a => a.detector))].join(", "));
        }
        p.addEventListener("click", () => { selected = c.id; drawScatter(); loadTimeline(c); });
      }
    }

    function chart(parent, title, samples, key, color, alerts, fmt) {
      const W = 460, H = 92, m = { l: 64, r: 8, t: 16, b: 16 };
      const svg = el("svg", { width: W, height: H, class: "chart", "data-series": key }, parent);
      el("text", { x: 4, y: 12 }, svg, title);
      if (!samples.length) return;
      const t0 = new Date(samples[0].time).getTime(), t1 = Math.max(t0 + 1000, new Date(samples[samples.length - 1].time).getTime());
      const vals = samples.map(s => s[key] || 0);
      const max = Math.max(...vals, key === "cpuShare" ? 1 : 1e-9);
      const x = t => m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r);
      const y = v => H - m.b - (v / max) * (H - m.t - m.b);
      el("text", { x: m.l - 6, y: m.t + 8, "text-anchor": "end" }, svg, fmt(max));
      el("text", { x: m.l - 6, y: H - m.b, "text-anchor": "end" }, svg, fmt(0));
      el("polyline", { class: "series-line", stroke: color, points: samples.map(s => `${x(new Date(s.time).getTime())},${y(s[key] || 0)}`).join(" ") }, svg);
      for (const a of alerts) {
        const t = new Date(a.detectedAt).getTime();
        if (t < t0 || t > t1) continue;
        const line = el("line", { class: "alert-mark", x1: x(t), x2: x(t), y1: m.t, y2: H - m.b, "data-detector": a.detector }, svg);
        el("title", {}, line, `${clock(a.detectedAt)} ${a.severity} ${a.detector}: ${a.summary}\n` + a.evidence.slice(0, 6).map(e => `${e.name}: ${e.value}`).join("\n"));
      }
    }

    function loadTimeline(c) {
      document.getElementById("timeline-title").textContent = "Timeline: " + label(c);
      const box = document.getElementById("timeline");
      api(`/api/containers/${c.id}/series?since=1h`).then(s => {
        box.textContent = "";
        document.getElementById("timeline-note").textContent =
          `${s.samples.length} samples since ${clock(s.since)}; ${s.alerts.length} alerts` + (c.image ? `; image ${c.image}` : "");
        chart(box, "CPU (share)", s.samples, "cpuShare", "#4a7bd0", s.alerts, v => Math.round(v * 100) + "%");
        chart(box, "upload", s.samples, "uploadBytesPerSecond", "#d8342c", s.alerts, rate);
        chart(box, "download", s.samples, "downloadBytesPerSecond", "#2f8f5b", s.alerts, rate);
        chart(box, "connections", s.samples, "connections", "#7a5cc2", s.alerts, v => v.toFixed(0));
        const list = h("ul");
        for (const a of s.alerts) list.appendChild(h("li", `${clock(a.detectedAt)} ${a.severity} ${a.detector}: ${a.summary}`));
        box.appendChild(list);
      }).catch(e => { box.textContent = "no timeline: " + e; });
    }

    function drawAlerts(alerts) {
      const body = document.querySelector("#alerts tbody");
      body.textContent = "";
      for (const a of alerts.slice().reverse().slice(0, 200)) {
        const tr = h("tr");
        tr.dataset.container = a.container.id;
        tr.appendChild(h("td", clock(a.detectedAt)));
        tr.appendChild(h("td", a.severity, "sev-" + a.severity));
        tr.appendChild(h("td", a.detector));
        tr.appendChild(h("td", a.container.name || (a.container.k8s && a.container.k8s.pod) || a.container.id.slice(0, 12)));
        const td = h("td", a.summary);
        td.appendChild(h("div", a.evidence.slice(0, 5).map(e => `${e.name}: ${e.value}`).join(" | "), "evidence"));
        tr.appendChild(td);
        body.appendChild(tr);
      }
    }

    function drawExceptions(list) {
      const body = document.querySelector("#exceptions tbody");
      body.textContent = "";
      for (const x of list) {
        const tr = h("tr");
        tr.appendChild(h("td", x.name));
        tr.appendChild(h("td", x.reason));
        tr.appendChild(h("td", x.source));
        tr.appendChild(h("td", String(x.hits)));
        body.appendChild(tr);
      }
      if (!list.length) { const tr = h("tr"); tr.appendChild(h("td", "none")); body.appendChild(tr); }
    }

    function refresh() {
      api("/api/containers").then(s => {
        containers = s.containers;
        document.getElementById("host").textContent = s.hostname;
        document.getElementById("status").textContent = `${containers.length} containers, pass ${s.passes}, updated ${clock(s.updated)}`;
        drawScatter();
        if (!selected) {
          const first = containers.find(c => c.alerts.length) || containers[0];
          if (first) { selected = first.id; drawScatter(); loadTimeline(first); }
        }
      }).catch(e => { document.getElementById("status").textContent = "agent not answering: " + e; });
      api("/api/alerts?since=24h").then(r => drawAlerts(r.alerts)).catch(() => {});
      api("/api/exceptions").then(drawExceptions).catch(() => {});
    }
    refresh();
    setInterval(refresh, 2000);
    """#
}
