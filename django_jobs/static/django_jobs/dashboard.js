/* django-jobs dashboard: renders the JSON snapshot, refreshes it with fetch(), draws the
   throughput charts as inline SVG. No dependencies: it works offline. */
"use strict";
(function () {
  const root = document.getElementById("jobs-dashboard");
  if (!root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const canPause = root.dataset.canPause === "1";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  // As django_jobs.admin.display.duration: '87 ms', '12.345 s', '4 min 3.210 s', '2 h 5 min 3 s'.
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(3) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60).toFixed(3) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min " +
      Math.floor(seconds % 60) + " s";
  }

  // As display.timestamp: '12 s ago', the exact second on hover.
  function ago(now, seconds) {
    const span = Math.max(seconds, 0);
    const text = span < 60 ? Math.floor(span) + " s" : span < 3600 ? Math.floor(span / 60) + " min"
      : span < 86400 ? Math.floor(span / 3600) + " h" : Math.floor(span / 86400) + " d";
    const at = new Date(new Date(now).getTime() - seconds * 1000);
    return el("time", { datetime: at.toISOString(), title: exact(at) }, text + " ago");
  }

  function exact(at) {
    const pad = (n) => String(n).padStart(2, "0");
    const zone = new Intl.DateTimeFormat([], { timeZoneName: "short" }).formatToParts(at)
      .find((part) => part.type === "timeZoneName");
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " +
      pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds()) +
      (zone ? " " + zone.value : "");
  }

  // As display.short_task: the last dotted parts that fit in 24 characters, whole on hover.
  function shortTask(path) {
    let parts = path.split("."), short = path;
    while (short.length > 24 && parts.length > 1) {
      parts = parts.slice(1);
      short = "…" + parts.join(".");
    }
    return el("span", { class: "jobs-cut", title: path }, short);
  }

  function percent(rate) {
    return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + " %";
  }

  function fill(tableId, rows) {
    const body = document.querySelector("#" + tableId + " tbody");
    body.replaceChildren(...rows);
    if (!rows.length) {
      const cols = document.querySelectorAll("#" + tableId + " thead th").length;
      body.append(el("tr", {}, el("td", { colspan: cols, class: "jobs-empty" }, "None")));
    }
  }

  function link(href, text) {
    return el("a", { href: href }, text);
  }

  function badge(text, kind) {
    return el("span", { class: "jobs-status jobs-status-" + kind }, text);
  }

  function card(label, value, id) {
    return el("div", { class: "jobs-card", id: id }, el("div", { class: "jobs-card-value" }, value),
      el("div", { class: "jobs-card-label" }, label));
  }

  function renderCards(data) {
    const sum = (key) => data.queues.reduce((n, q) => n + q[key], 0);
    const live = data.workers.filter((w) => !w.stale).length;
    const total = data.total.estimated ? "≈ " + data.total.value.toLocaleString() : data.total.value.toLocaleString();
    document.getElementById("jobs-cards").replaceChildren(
      card("ready", sum("ready").toLocaleString(), "jobs-card-ready"),
      card("running", sum("running").toLocaleString(), "jobs-card-running"),
      card("finished, last hour", data.throughput.hour.finished.toLocaleString(), "jobs-card-finished"),
      card("failure rate, last hour", percent(data.throughput.hour.failure_rate), "jobs-card-failure"),
      card("failure rate, last day", percent(data.throughput.day.failure_rate), "jobs-card-failure-day"),
      card("live workers", live, "jobs-card-workers"),
      card("jobs stored", total, "jobs-card-total"),
    );
  }

  function queueButton(queue) {
    const action = queue.paused ? "resume" : "pause";
    const button = el("button", { type: "button", class: "jobs-button", "data-queue": queue.name,
      "data-action": action }, queue.paused ? "Resume" : "Pause");
    button.addEventListener("click", () => toggleQueue(queue.name, action));
    return el("td", {}, button);
  }

  function renderQueues(data) {
    const jobs = root.dataset.jobUrl;
    fill("jobs-queues", data.queues.map((q) => el("tr", { "data-queue": q.name },
      el("td", {}, link(jobs + "?queue_name=" + encodeURIComponent(q.name), q.name)),
      el("td", {}, q.ready.toLocaleString()),
      el("td", {}, duration(q.oldest_ready_age)),
      el("td", {}, q.scheduled.toLocaleString()),
      el("td", {}, q.running.toLocaleString()),
      el("td", {}, q.paused ? badge("paused", "cancelled") : badge("active", "successful")),
      ...(canPause ? [queueButton(q)] : []),
    )));
  }

  // Tick steps for the time axis, in minutes: the smallest that leaves TICK_GAP px between labels.
  const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
  const TICK_GAP = 64;

  function drawChart(id, series) {
    // Drawn at the size it is shown (viewBox = its pixels), so labels keep their font size.
    const chart = document.getElementById(id);
    const width = Math.max(chart.clientWidth, 200), height = Math.max(chart.clientHeight, 120);
    const left = 40, right = 8, bottom = 20, top = 12;
    const points = series.points;
    const step = series.step * 1000;
    const start = new Date(points[0].t).getTime(), end = start + points.length * step;
    const plot = width - left - right;
    const x = (ms) => left + ((ms - start) / (end - start)) * plot;
    const totals = points.map((p) => p.succeeded + p.failed + p.cancelled);
    const yStep = niceStep(Math.max(1, ...totals) / 3);
    const max = yStep * Math.max(1, Math.ceil(Math.max(1, ...totals) / yStep));
    const scale = (height - top - bottom) / max;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    const parts = [];
    for (let v = 0; v <= max; v += yStep) {
      const y = height - bottom - v * scale;
      parts.push(svg("line", { x1: left, y1: y, x2: width - right, y2: y, class: v ? "jobs-grid" : "jobs-axis" }),
        text(left - 4, y + 3, v.toLocaleString(), "end"));
    }
    for (const at of timeTicks(start, end, plot)) {
      const tx = x(at.getTime());
      parts.push(svg("line", { x1: tx, y1: height - bottom, x2: tx, y2: height - bottom + 3, class: "jobs-axis" }),
        text(tx, height - 5, tickLabel(at), "middle"));
    }
    const slot = plot / points.length;
    points.forEach((p, i) => {
      let y = height - bottom;
      const group = svg("g", {});
      const tip = svg("title", {});
      const from = new Date(p.t), to = new Date(from.getTime() + step);
      tip.textContent = clock(from) + "–" + clock(to) + ": " + p.succeeded + " succeeded, " + p.failed +
        " failed, " + p.cancelled + " cancelled";
      group.append(tip);
      for (const [key, cls] of [["succeeded", "jobs-ok"], ["failed", "jobs-ko"], ["cancelled", "jobs-cx"]]) {
        const h = p[key] * scale;
        if (h <= 0) continue;
        y -= h;
        group.append(svg("rect", { x: left + i * slot + 0.5, y: y, width: Math.max(slot - 1, 1), height: h, class: cls }));
      }
      group.append(svg("rect", { x: left + i * slot, y: top, width: slot, height: height - top - bottom, class: "jobs-hit" }));
      parts.push(group);
    });
    chart.replaceChildren(...parts);
  }

  function niceStep(rough) {
    const power = Math.pow(10, Math.floor(Math.log10(Math.max(rough, 1))));
    for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
    return 10 * power;
  }

  // Local times on whole steps (every 10 min, every 3 h, ...) between start and end.
  function timeTicks(start, end, plot) {
    const span = (end - start) / 60000;
    const minutes = TICK_MINUTES.find((m) => (plot * m) / span >= TICK_GAP) || 1440;
    const first = new Date(start);
    first.setSeconds(0, 0);
    const into = first.getHours() * 60 + first.getMinutes();
    first.setMinutes(first.getMinutes() + ((minutes - (into % minutes)) % minutes));
    const ticks = [];
    const edge = (TICK_GAP / 2 / plot) * (end - start);  // no label half off the chart
    for (let at = first; at.getTime() <= end - edge; at = new Date(at.getTime() + minutes * 60000)) {
      if (at.getTime() >= start + edge) ticks.push(at);
    }
    return ticks;
  }

  function tickLabel(at) {
    if (at.getHours() === 0 && at.getMinutes() === 0) {
      return at.toLocaleDateString([], { month: "short", day: "numeric" });
    }
    return clock(at);
  }

  function text(x, y, value, anchor) {
    const node = svg("text", { x: x, y: y, "text-anchor": anchor, class: "jobs-label" });
    node.textContent = value;
    return node;
  }

  function clock(at) {
    return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderLatency(data) {
    const lat = data.latency;
    document.getElementById("jobs-latency-sample").textContent =
      "(last " + lat.sample + " successful job" + (lat.sample === 1 ? "" : "s") + " of the last hour)";
    const row = (label, p) => el("tr", {}, el("th", {}, label), el("td", {}, duration(p.p50)),
      el("td", {}, duration(p.p90)), el("td", {}, duration(p.p99)), el("td", {}, duration(p.max)));
    fill("jobs-latency", [row("Queue wait (ready → start)", lat.wait), row("Run time", lat.run)]);
  }

  function renderRunning(data) {
    const jobs = root.dataset.jobUrl, workers = root.dataset.workerUrl;
    fill("jobs-running", data.running.map((j) => el("tr", {},
      el("td", {}, link(jobs + encodeURIComponent(j.id) + "/change/", j.id.slice(0, 8))),
      el("td", {}, shortTask(j.task_path)), el("td", {}, j.queue_name), el("td", {}, j.attempts),
      el("td", {}, j.claimed_by ? link(workers + encodeURIComponent(j.claimed_by) + "/change/", j.claimed_by.slice(0, 8)) : "–"),
      el("td", {}, duration(j.running_for)),
    )));
  }

  function renderWorkers(data) {
    const workers = root.dataset.workerUrl, now = data.now;
    fill("jobs-workers", data.workers.map((w) => el("tr", { class: w.stale ? "jobs-stale" : "" },
      el("td", {}, link(workers + encodeURIComponent(w.id) + "/change/", w.id.slice(0, 8))),
      el("td", {}, w.hostname + ":" + w.pid),
      el("td", {}, w.queues.length ? w.queues.join(", ") : "all"),
      el("td", {}, w.running + " / " + w.concurrency),
      el("td", {}, ago(now, w.heartbeat_age)),
      el("td", {}, w.stale ? badge("stale", "failed") : badge("live", "successful"),
        w.note ? el("span", { class: "jobs-note" }, " " + w.note) : ""),
    )));
  }

  let last = null;

  function drawCharts(data) {
    drawChart("jobs-chart-hour", data.throughput.hour);
    drawChart("jobs-chart-day", data.throughput.day);
    const zone = exact(new Date()).split(" ")[2];
    document.getElementById("jobs-chart-zone").textContent = zone ? "· times in " + zone + " (this browser's time zone)" : "";
  }

  function render(data) {
    last = data;
    renderCards(data);
    renderQueues(data);
    drawCharts(data);
    renderLatency(data);
    renderRunning(data);
    renderWorkers(data);
    document.getElementById("jobs-updated").textContent = new Date(data.now).toLocaleTimeString();
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
  }

  async function refresh() {
    try {
      const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" },
        credentials: "same-origin" });
      if (response.ok) render(await response.json());
    } catch (error) {
      document.getElementById("jobs-updated").textContent = "refresh failed (" + error + ")";
    }
  }

  async function toggleQueue(name, action) {
    const body = new URLSearchParams({ queue: name, action: action });
    const token = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    await fetch(root.dataset.queueUrl, { method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": token, Accept: "application/json" } });
    refresh();
  }

  document.getElementById("jobs-refresh").addEventListener("click", refresh);
  window.addEventListener("resize", () => { if (last) drawCharts(last); });
  render(JSON.parse(document.getElementById("jobs-dashboard-data").textContent));
  setInterval(refresh, Number(root.dataset.refresh) * 1000);
})();
