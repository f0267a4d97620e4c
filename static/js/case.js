// Case page: upload with a progress bar (XHR), then refresh the server-rendered scans
// panel every 2 s while any scan is queued or processing. A refused upload (bad files: 400,
// closed case: 409) shows the server's messages.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const progress = document.getElementById("upload-progress");
  const errors = document.getElementById("upload-errors");
  const scans = document.getElementById("scans");
  let timer = null;

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

  function refresh() {
    // Do not replace the panel while someone is typing a review.
    if (scans.contains(document.activeElement) && document.activeElement.matches("textarea, select, input")) {
      return schedule();
    }
    fetch(scans.dataset.fragmentUrl, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => { scans.innerHTML = html; schedule(); })
      .catch(() => schedule(5000));
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = pending() ? setTimeout(refresh, delay || 2000) : null;
  }

  function showErrors(list) {
    errors.innerHTML = "";
    list.forEach((error) => {
      const item = document.createElement("li");
      item.textContent = (error.file ? "File " + error.file + (error.name ? " (" + error.name + ")" : "") + ": " : "") + error.message;
      errors.appendChild(item);
    });
  }

  // A closed case has no upload form: only the polling and the overlay slider apply.
  if (form) form.addEventListener("submit", (event) => {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.responseType = "json";
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total; });
    xhr.addEventListener("load", () => {
      progress.hidden = true;
      if (xhr.status === 201) {
        showErrors([]);
        form.reset();
        refresh();
      } else if (xhr.response && xhr.response.errors) {
        showErrors(xhr.response.errors);
      } else {
        showErrors([{ message: "Upload failed (HTTP " + xhr.status + ")." }]);
      }
    });
    xhr.addEventListener("error", () => { progress.hidden = true; showErrors([{ message: "Upload failed: network error." }]); });
    xhr.send(new FormData(form));
  });

  schedule();
})();
