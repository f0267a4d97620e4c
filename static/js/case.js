// Case page: upload with a progress bar per request (XHR), then "n of m classified" while the
// server-rendered scans panel refreshes every 2 s until no scan is checking, queued or processing. Reviews
// are saved with fetch: only the scan and the flag line are re-rendered, the reader stays where
// they were and focus moves to the next unreviewed scan. Keys: j/n next, k/p previous, c confirm.
// Without JavaScript every form posts normally and the server redirects back to #scan-N.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const uploads = document.getElementById("uploads");
  const scans = document.getElementById("scans");
  let timer = null;
  let watched = []; // [{ids, status element, names}] of this page's uploads, until classified

  // Explanation overlay opacity: delegated, so it survives the panel being re-rendered.
  scans.addEventListener("input", (event) => {
    if (!event.target.matches(".heatmap-opacity")) return;
    const heatmap = event.target.closest(".scan-figure").querySelector(".heatmap");
    if (heatmap) heatmap.style.opacity = event.target.value / 100;
  });

  function pending() {
    const panel = scans.querySelector("[data-pending]");
    return panel && panel.dataset.pending === "true";
  }

  function busyReading() {
    // Do not replace the panel while someone is typing a review or has a correction open.
    const active = document.activeElement;
    return (scans.contains(active) && active.matches("textarea, select, input")) || scans.querySelector("details[open]");
  }

  function refresh() {
    if (busyReading()) return schedule();
    fetch(scans.dataset.fragmentUrl, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest(".scan") : null;
        keepInView(focused && focused.id, () => { scans.innerHTML = html; });
        if (focused && document.getElementById(focused.id)) document.getElementById(focused.id).focus({ preventScroll: true });
        countClassified();
        schedule();
      })
      .catch(() => schedule(5000));
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = pending() ? setTimeout(refresh, delay || 2000) : null;
  }

  // Replace part of the page without moving what the reader looks at: the element ``id`` (or
  // the first scan on screen) keeps its distance from the top of the window.
  function keepInView(id, change) {
    let anchor = id && document.getElementById(id);
    if (!anchor) anchor = Array.from(scans.querySelectorAll(".scan")).find((s) => s.getBoundingClientRect().bottom > 0);
    const anchorId = anchor && anchor.id;
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    const after = anchorId && document.getElementById(anchorId);
    if (after) window.scrollBy(0, after.getBoundingClientRect().top - before);
  }

  // ---- Uploads: one progress bar per request, then a live count of its scans.
  function line(text, className) {
    const item = document.createElement("li");
    item.textContent = text;
    if (className) item.className = className;
    return item;
  }

  function countClassified() {
    watched = watched.filter((upload) => {
      let done = 0, failed = 0, held = 0, checking = 0;
      upload.ids.forEach((id) => {
        const scan = document.getElementById("scan-" + id);
        const status = scan ? scan.dataset.status : "gone";
        if (status === "done") done += 1;
        else if (status === "failed" || status === "gone") failed += 1;
        else if (status === "held") held += 1;
        else if (status === "checking") checking += 1;
      });
      const total = upload.ids.length;
      // The worker reads each scan for burned-in text first: that count leads while it runs.
      upload.status.textContent = (checking ? (total - checking) + " of " + total + " checked for burned-in text; " : "") +
        done + " of " + total + " classified" + (held ? ", " + held + " held for a data steward's check" : "") +
        (failed ? ", " + failed + " failed (see the scans below)" : "") + ".";
      upload.status.dataset.classified = done;
      return done + failed + held < total;
    });
  }

  function uploadFiles() {
    const files = Array.from(form.querySelector("input[type=file]").files);
    const names = files.map((file) => file.name);
    const entry = document.createElement("li");
    entry.className = "upload";
    const title = document.createElement("p");
    title.textContent = "Uploading " + files.length + " file" + (files.length === 1 ? "" : "s") + ": " + names.join(", ");
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress");
    const status = document.createElement("p");
    status.className = "upload-status";
    status.setAttribute("role", "status");
    const details = document.createElement("ul");
    details.className = "upload-files";
    entry.append(title, bar, status, details);
    uploads.prepend(entry);

    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; });
    xhr.addEventListener("load", () => {
      bar.value = 100;
      bar.hidden = true;
      const body = xhr.response || {};
      if (xhr.status === 201) {
        const stored = body.scans || [];
        entry.classList.add("stored");
        title.textContent = "Stored " + stored.length + " of " + files.length + " file" + (files.length === 1 ? "" : "s") + " as new scans (metadata removed, names not kept).";
        stored.forEach((scan, index) => details.appendChild(line((names[index] || "file " + (index + 1)) + ": stored as scan " + scan.id + ", " + scan.status + ".")));
        watched.push({ ids: stored.map((scan) => scan.id), status: status });
        status.textContent = "0 of " + stored.length + " classified.";
        status.dataset.classified = 0;
        refresh();
      } else {
        entry.classList.add("refused");
        const errors = body.errors || [{ file: 0, message: "Upload failed (HTTP " + xhr.status + ")." }];
        title.textContent = "Nothing was stored: an upload is stored whole or not at all, and the server refused it.";
        errors.forEach((error) => {
          const name = error.file ? names[error.file - 1] || error.name || "file " + error.file : "";
          details.appendChild(line((name ? name + ": " : "") + error.message, "error"));
        });
        const refused = new Set(errors.map((error) => error.file));
        if (!refused.has(0)) {
          names.forEach((name, index) => { if (!refused.has(index + 1)) details.appendChild(line(name + ": fine, but not stored with the others refused; upload it again.", "muted")); });
        }
      }
    });
    xhr.addEventListener("error", () => {
      bar.hidden = true;
      entry.classList.add("refused");
      title.textContent = "Nothing was stored: the upload did not reach the server (network error).";
    });
    xhr.send(new FormData(form));
    form.reset();
  }

  // A closed case has no upload form: only the polling, the reviews' display and the slider apply.
  if (form) form.addEventListener("submit", (event) => { event.preventDefault(); uploadFiles(); });

  // ---- Reviews.
  function scanList() { return Array.from(scans.querySelectorAll(".scan")); }

  function focusScan(scan, scroll) {
    if (!scan) return;
    scan.focus({ preventScroll: true });
    if (scroll) scan.scrollIntoView({ block: "start", behavior: "instant" });
  }

  function nextUnreviewed(after) {
    const all = scanList();
    const start = all.indexOf(after);
    const rest = all.slice(start + 1).concat(all.slice(0, start));
    return rest.find((scan) => scan.dataset.reviewable === "true" && scan.dataset.reviewed === "false");
  }

  scans.addEventListener("submit", (event) => {
    const reviewForm = event.target.closest(".review-form");
    if (!reviewForm) return;
    event.preventDefault();
    const article = reviewForm.closest(".scan");
    const status = article.querySelector(".review-status");
    reviewForm.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    fetch(reviewForm.action, {
      method: "POST",
      body: new FormData(reviewForm), // carries csrfmiddlewaretoken
      credentials: "same-origin",
      headers: { "X-Requested-With": "XMLHttpRequest" },
    })
      .then((response) => response.json().then((body) => ({ ok: response.ok, body: body })))
      .then(({ ok, body }) => {
        if (!ok || !body.scans_html) {
          reviewForm.querySelectorAll("button").forEach((button) => { button.disabled = false; });
          status.textContent = body.message || "The review was not saved.";
          status.classList.add("error");
          return;
        }
        // The answer is the scans fragment holding this scan alone: take the scan and the flag line.
        const id = article.id;
        const answer = document.createElement("template");
        answer.innerHTML = body.scans_html;
        keepInView(id, () => {
          article.replaceWith(answer.content.getElementById(id));
          const flag = document.getElementById("case-flag-line");
          const freshFlag = answer.content.getElementById("case-flag-line");
          if (flag && freshFlag) flag.replaceWith(freshFlag);
        });
        const saved = document.getElementById(id);
        saved.querySelector(".review-status").textContent = body.message;
        focusScan(nextUnreviewed(saved) || saved, false);
      })
      .catch(() => {
        reviewForm.querySelectorAll("button").forEach((button) => { button.disabled = false; });
        status.textContent = "The review was not saved: network error. Try again.";
        status.classList.add("error");
      });
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const all = scanList();
    if (!all.length) return;
    const current = target.closest ? target.closest(".scan") : null;
    const index = all.indexOf(current);
    if (event.key === "j" || event.key === "n") {
      focusScan(all[Math.min(index + 1, all.length - 1)], true);
    } else if (event.key === "k" || event.key === "p") {
      focusScan(all[Math.max(index - 1, 0)], true);
    } else if (event.key === "c" && current) {
      // Never confirm a scan the reader cannot see: the first press brings it into view.
      const box = current.getBoundingClientRect();
      const confirm = current.querySelector(".confirm-form button");
      if (box.bottom < 150 || box.top > window.innerHeight * 0.6) focusScan(current, true);
      else if (confirm && !confirm.disabled) confirm.click();
    } else {
      return;
    }
    event.preventDefault();
  });

  schedule();
})();
