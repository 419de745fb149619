/* django-jobs live view: the job page and the job list poll the admin's live/ endpoint and
   update what changed (status, attempts, progress, the outcome) without a reload. Polling
   stops once nothing shown can change (finished jobs) and while the page is hidden. */
"use strict";
(function () {
  const FINISHED = ["SUCCESSFUL", "FAILED", "CANCELLED"];
  const LIST_SECONDS = 5;

  function poller(seconds, poll) {
    let timer = null;
    let stopped = false;
    async function tick() {
      timer = null;
      if (stopped || document.hidden) return;
      const more = await poll().catch(() => true);  // a failed fetch: try again later
      if (more && !stopped) timer = setTimeout(tick, seconds * 1000);
      else stopped = true;
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !stopped && timer === null) tick();
      if (document.hidden && timer !== null) { clearTimeout(timer); timer = null; }
    });
    tick();
  }

  async function fetchJobs(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" },
      credentials: "same-origin" });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return response.json();
  }

  // --- the job page ----------------------------------------------------------------------
  function jobPage(root) {
    const shown = {};
    for (const node of root.querySelectorAll("[data-live]")) shown[node.dataset.live] = null;
    async function poll() {
      const data = await fetchJobs(root.dataset.liveUrl);
      const job = data.jobs[0];
      if (!job) return false;  // deleted
      for (const [name, html] of Object.entries(job.sections)) {
        const node = root.querySelector("[data-live='" + name + "']");
        if (node && shown[name] !== html) {
          if (shown[name] !== null || node.innerHTML.trim() !== html.trim()) node.innerHTML = html;
          shown[name] = html;
        }
      }
      const cancel = document.getElementById("jobs-cancel");
      if (cancel && !job.can_cancel) cancel.closest("li").hidden = true;
      root.dataset.status = job.state;
      root.dataset.polls = String(Number(root.dataset.polls || 0) + 1);
      return !job.finished;
    }
    if (root.dataset.finished !== "1") poller(Number(root.dataset.refresh) || 2, poll);
  }

  // --- the job list ----------------------------------------------------------------------
  const ID = /\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/change\//;

  function listRows(table) {
    const rows = new Map();
    for (const row of table.querySelectorAll("tbody tr")) {
      const link = row.querySelector("a[href*='/change/']");
      const match = link && link.getAttribute("href").match(ID);
      if (match) rows.set(match[1], { row: row, link: link });
    }
    return rows;
  }

  function unfinished(row) {
    const badge = row.querySelector(".jobs-status");
    return !badge || !/jobs-status-(successful|failed|cancelled)/.test(badge.className);
  }

  function updateRow(row, job) {
    const badge = row.querySelector(".jobs-status");
    if (badge) {
      const cell = badge.parentNode;
      const holder = document.createElement("span");
      holder.innerHTML = job.status_html;
      cell.replaceChild(holder.firstChild, badge);
      let bar = cell.querySelector(".jobs-progress-line");
      if (bar) bar.remove();
      if (job.progress_html) {
        holder.innerHTML = job.progress_html;
        if (holder.firstElementChild) cell.append(holder.firstElementChild);
      }
    }
    const attempts = row.querySelector("td.field-attempts_display");
    if (attempts) attempts.textContent = job.attempts;
    row.dataset.status = job.state;
  }

  function jobList(table) {
    const rows = listRows(table);
    if (!rows.size) return;
    const first = rows.values().next().value.link;
    const endpoint = new URL("../../live/", first.href);
    async function poll() {
      const ids = [...rows.keys()].filter((id) => unfinished(rows.get(id).row));
      if (!ids.length) return false;
      const url = new URL(endpoint);
      for (const id of ids) url.searchParams.append("id", id);
      const data = await fetchJobs(url);
      for (const job of data.jobs) updateRow(rows.get(job.id).row, job);
      table.dataset.polls = String(Number(table.dataset.polls || 0) + 1);
      return data.jobs.some((job) => !job.finished);
    }
    poller(LIST_SECONDS, poll);
  }

  function start() {
    const root = document.getElementById("jobs-job");
    if (root) jobPage(root);
    const table = document.querySelector("body.change-list #result_list");
    if (table) jobList(table);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
