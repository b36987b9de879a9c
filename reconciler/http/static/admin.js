// Refreshes the operator page from the JSON under /admin/api/ every few seconds.
// Served as a file (the Content-Security-Policy allows no inline script). Every value is put
// into the page with textContent, never as HTML: job ids and error texts come from callers;
// their control, bidi and invisible characters are shown as escapes (escape.js).
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "/admin";
  const refreshUrl = body.dataset.refreshUrl;
  const refreshSeconds = Number(body.dataset.refreshSeconds) || 5;
  const status = document.getElementById("refresh-status");
  // The server's set of control, bidi and invisible characters (data-unsafe): app text is
  // inserted with them written as escapes, as the server renders it (escape.js).
  const visible = globalThis.visibleText(body.dataset.unsafe || "[\\u{0}-\\u{1f}]");

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = visible(text);
    if (className) node.className = className;
    return node;
  }

  function relative(iso, now) {
    if (!iso) return "—";
    const seconds = (Date.parse(iso) - now) / 1000;
    const magnitude = Math.abs(seconds);
    let text;
    if (magnitude < 1) return "now";
    if (magnitude < 60) text = Math.floor(magnitude) + "s";
    else if (magnitude < 3600) text = Math.floor(magnitude / 60) + "m " + Math.floor(magnitude % 60) + "s";
    else if (magnitude < 86400) text = Math.floor(magnitude / 3600) + "h " + Math.floor((magnitude % 3600) / 60) + "m";
    else text = Math.floor(magnitude / 86400) + "d " + Math.floor((magnitude % 86400) / 3600) + "h";
    return seconds > 0 ? "in " + text : text + " ago";
  }

  function none() {
    return element("span", "—", "none");
  }

  function when(iso, now) {
    const cell = element("td");
    if (!iso) {
      cell.appendChild(none());
      return cell;
    }
    const time = element("time", relative(iso, now));
    time.dateTime = iso;
    time.title = iso;
    cell.appendChild(time);
    return cell;
  }

  function text(value, className) {
    if (value !== null && value !== undefined) return element("td", value, className);
    const cell = element("td", null, className);
    cell.appendChild(none());
    return cell;
  }

  function progress(value) {
    const cell = element("td");
    if (value === null || value === undefined) {
      cell.appendChild(none());
      return cell;
    }
    const bar = element("progress", value + "%");
    bar.max = 100;
    bar.value = value;
    cell.appendChild(bar);
    cell.appendChild(document.createTextNode(" " + value + "%"));
    return cell;
  }

  function projectLink(projectId) {
    const cell = element("td");
    const anchor = element("a", projectId);
    anchor.href = base + "/projects/" + encodeURIComponent(projectId);
    cell.appendChild(anchor);
    return cell;
  }

  function httpUrl(value) {
    if (typeof value !== "string") return null;
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? value : null;
    } catch (error) {
      return null;
    }
  }

  function fill(id, rows, columns, emptyText, makeRow) {
    const tbody = document.getElementById(id);
    if (!tbody) return;
    const fresh = document.createDocumentFragment();
    if (rows.length === 0) {
      const row = element("tr", null, "empty");
      const cell = text(emptyText);
      cell.colSpan = columns;
      row.appendChild(cell);
      fresh.appendChild(row);
    }
    for (const item of rows) fresh.appendChild(makeRow(item));
    tbody.replaceChildren(fresh);
  }

  function row(cells, className) {
    const tr = element("tr", null, className);
    for (const cell of cells) tr.appendChild(cell);
    return tr;
  }

  function setText(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = String(value);
  }

  function renderOverview(data) {
    const now = Date.parse(data.generated_at);
    setText("generated-at", data.generated_at);
    setText("unsettled", data.unsettled);
    setText("parked-results", data.parked_results);
    setText("archive-backlog", data.archive_backlog === null ? "off" : data.archive_backlog);
    setText("failures-count", data.failures_24h.length);
    fill("replicas", data.replicas, 8, "No replica has reported in.", (replica) =>
      row(
        [
          text(replica.owner),
          text(replica.version),
          text(replica.feed_state, "feed feed-" + replica.feed_state),
          text(replica.alive ? "yes" : "NO"),
          text(replica.leases_held),
          when(replica.last_seen_at, now),
          when(replica.last_sweep_at, now),
          when(replica.started_at, now),
        ],
        replica.alive ? "alive" : "dead"
      )
    );
    fill("age-buckets", data.age_buckets, 2, "Nothing unsettled.", (bucket) =>
      row([text(bucket.label), text(bucket.count)])
    );
    fill("oldest", data.oldest, 7, "Nothing unsettled.", (job) =>
      row([
        projectLink(job.project_id),
        text(job.job_id, "job-id"),
        when(job.first_seen_at, now),
        text(job.attempts),
        when(job.next_check_at, now),
        text(job.last_error, "error-text"),
        progress(job.progress),
      ])
    );
    fill("failure-reasons", data.failure_reasons_24h, 2, "No failures.", (entry) =>
      row([text(entry.reason, "error-text"), text(entry.count)])
    );
    fill("failures", data.failures_24h, 4, "No failures.", (failure) =>
      row([
        when(failure.settled_at, now),
        projectLink(failure.project_id),
        text(failure.job_id, "job-id"),
        text(failure.reason, "error-text"),
      ])
    );
  }

  function valueCell(value) {
    const target = httpUrl(value);
    if (target === null) {
      return text(typeof value === "string" ? value : JSON.stringify(value), "value");
    }
    const cell = element("td", null, "value");
    const anchor = element("a", target);
    anchor.href = target;
    anchor.rel = "noreferrer noopener";
    cell.appendChild(anchor);
    return cell;
  }

  function renderProject(data) {
    const now = Date.now();
    fill("clips", data.clips, 8, "This project has no clips.", (clip) =>
      row(
        [
          text(clip.job_id, "job-id"),
          text(clip.status, "status"),
          valueCell(clip.value),
          text(clip.attempts),
          when(clip.next_check_at, now),
          text(clip.last_error, "error-text"),
          progress(clip.progress),
          text(clip.archive_state),
        ],
        "status-" + clip.status
      )
    );
  }

  async function refresh() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch(refreshUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!response.ok) {
        status.textContent = "refresh failed (HTTP " + response.status + ")";
        status.className = "stale";
        return;
      }
      const data = await response.json();
      if (Array.isArray(data.clips)) renderProject(data);
      else renderOverview(data);
      status.textContent = "updated " + new Date().toLocaleTimeString();
      status.className = "fresh";
    } catch (error) {
      status.textContent = "refresh failed (" + error.message + ")";
      status.className = "stale";
    }
  }

  if (refreshUrl) {
    window.setInterval(refresh, refreshSeconds * 1000);
    document.addEventListener("visibilitychange", refresh);
  }
})();
