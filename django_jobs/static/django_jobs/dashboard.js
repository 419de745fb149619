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

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
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

  function drawChart(id, series) {
    const chart = document.getElementById(id);
    const width = 600, height = 160, left = 36, bottom = 18, top = 8;
    const points = series.points;
    const totals = points.map((p) => p.succeeded + p.failed + p.cancelled);
    const max = Math.max(1, ...totals);
    const slot = (width - left) / points.length;
    const scale = (height - top - bottom) / max;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    const parts = [
      svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "jobs-axis" }),
      text(left - 4, top + 8, max.toLocaleString(), "end"),
      text(left - 4, height - bottom, "0", "end"),
      text(left, height - 4, clock(points[0].t), "start"),
      text(width, height - 4, clock(points[points.length - 1].t), "end"),
    ];
    points.forEach((p, i) => {
      let y = height - bottom;
      const group = svg("g", {});
      const tip = svg("title", {});
      tip.textContent = clock(p.t) + ": " + p.succeeded + " succeeded, " + p.failed + " failed, " +
        p.cancelled + " cancelled";
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

  function text(x, y, value, anchor) {
    const node = svg("text", { x: x, y: y, "text-anchor": anchor, class: "jobs-label" });
    node.textContent = value;
    return node;
  }

  function clock(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
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
      el("td", {}, j.task_path), el("td", {}, j.queue_name), el("td", {}, j.attempts),
      el("td", {}, j.claimed_by ? link(workers + encodeURIComponent(j.claimed_by) + "/change/", j.claimed_by.slice(0, 8)) : "–"),
      el("td", {}, duration(j.running_for)),
    )));
  }

  function renderWorkers(data) {
    const workers = root.dataset.workerUrl;
    fill("jobs-workers", data.workers.map((w) => el("tr", { class: w.stale ? "jobs-stale" : "" },
      el("td", {}, link(workers + encodeURIComponent(w.id) + "/change/", w.id.slice(0, 8))),
      el("td", {}, w.hostname + ":" + w.pid),
      el("td", {}, w.queues.length ? w.queues.join(", ") : "all"),
      el("td", {}, w.running + " / " + w.concurrency),
      el("td", {}, duration(w.heartbeat_age) + " ago"),
      el("td", {}, w.stale ? badge("stale", "failed") : badge("live", "successful"),
        w.note ? el("span", { class: "jobs-note" }, " " + w.note) : ""),
    )));
  }

  function render(data) {
    renderCards(data);
    renderQueues(data);
    drawChart("jobs-chart-hour", data.throughput.hour);
    drawChart("jobs-chart-day", data.throughput.day);
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
  render(JSON.parse(document.getElementById("jobs-dashboard-data").textContent));
  setInterval(refresh, Number(root.dataset.refresh) * 1000);
})();
