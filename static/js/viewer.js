// Scan viewer: the scan drawn on a canvas with zoom (wheel, pinch, buttons), pan (drag),
// window/level on the 8-bit pixels (sliders, presets, right- or Shift-drag), invert, and the
// explanation overlay upsampled smoothly to the scan's size. Keys step through the case.
// The state is mirrored in data-* attributes of #viewer (zoom, center, width, invert, overlay)
// so tests and assistive tools can read it.
(function () {
  "use strict";
  const stage = document.getElementById("viewer");
  if (!stage) return;
  const canvas = document.getElementById("viewer-canvas");
  const ctx = canvas.getContext("2d");
  const $ = (id) => document.getElementById(id);
  const centerInput = $("wl-center");
  const widthInput = $("wl-width");
  const presets = Array.from(document.querySelectorAll(".wl-preset"));
  const first = presets[0];
  const MIN_ZOOM = 0.05;
  const MAX_ZOOM = 32;

  const state = {
    zoom: 1, panX: 0, panY: 0,
    center: Number(first.dataset.center), width: Number(first.dataset.width),
    invert: false, overlay: true, opacity: 0.6,
  };
  let source = null;     // ImageData of the scan as served
  let processed = null;  // canvas at the scan's size: W/L and invert applied
  let heat = null;       // canvas at the scan's size: the explanation, bilinear-upsampled
  let frame = 0;

  function offscreen(w, h) {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    return c;
  }

  function load(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("could not load " + url));
      img.src = url;
    });
  }

  // Window/level as a 256-entry table: values below centre - width/2 are black, above
  // centre + width/2 white, linear between (the DICOM PS3.3 C.11.2.1.2 ramp on 8 bits).
  function applyWindow() {
    if (!source) return;
    const lut = new Uint8ClampedArray(256);
    const low = state.center - state.width / 2;
    for (let v = 0; v < 256; v++) {
      let out = ((v - low) / state.width) * 255;
      out = Math.max(0, Math.min(255, out));
      lut[v] = state.invert ? 255 - out : out;
    }
    const out = new ImageData(source.width, source.height);
    const src = source.data, dst = out.data;
    for (let i = 0; i < src.length; i += 4) {
      // Luminance (BT.601): scans are grey, but a JPEG may store its grey as RGB.
      const v = lut[(src[i] * 77 + src[i + 1] * 150 + src[i + 2] * 29) >> 8];
      dst[i] = v; dst[i + 1] = v; dst[i + 2] = v; dst[i + 3] = 255;
    }
    processed.getContext("2d").putImageData(out, 0, 0);
  }

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const box = stage.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    canvas.style.width = box.width + "px";
    canvas.style.height = box.height + "px";
  }

  function draw() {
    frame = 0;
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!processed) return;
    ctx.setTransform(state.zoom * ratio, 0, 0, state.zoom * ratio, state.panX * ratio, state.panY * ratio);
    // Shrinking: smooth. Enlarging: show the scan's own pixels, not an interpolation of them.
    ctx.imageSmoothingEnabled = state.zoom < 1;
    ctx.drawImage(processed, 0, 0);
    if (heat && state.overlay && state.opacity > 0) {
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      ctx.globalAlpha = state.opacity;
      ctx.drawImage(heat, 0, 0);
      ctx.globalAlpha = 1;
    }
    publish();
  }

  function redraw() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function publish() {
    const d = stage.dataset;
    d.zoom = state.zoom.toFixed(3);
    d.panX = state.panX.toFixed(1);
    d.panY = state.panY.toFixed(1);
    d.center = String(state.center);
    d.windowWidth = String(state.width);
    d.invert = String(state.invert);
    d.overlay = heat ? String(state.overlay) : "none";
    $("zoom-level").value = Math.round(state.zoom * 100) + "%";
    $("wl-center-value").value = state.center.toFixed(1);
    $("wl-width-value").value = state.width.toFixed(1);
    const invert = $("invert");
    invert.setAttribute("aria-pressed", String(state.invert));
    const toggle = $("overlay-toggle");
    if (toggle) {
      toggle.setAttribute("aria-pressed", String(state.overlay));
      toggle.textContent = state.overlay ? "Overlay shown" : "Overlay hidden";
    }
  }

  // ---- zoom and pan -------------------------------------------------------------------------
  function zoomAt(factor, x, y) {
    const zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, state.zoom * factor));
    // Keep the image point under (x, y) where it is.
    state.panX = x - ((x - state.panX) * zoom) / state.zoom;
    state.panY = y - ((y - state.panY) * zoom) / state.zoom;
    state.zoom = zoom;
    redraw();
  }

  function stageCentre() {
    const box = stage.getBoundingClientRect();
    return [box.width / 2, box.height / 2];
  }

  function zoomTo(zoom) {
    const [x, y] = stageCentre();
    zoomAt(zoom / state.zoom, x, y);
  }

  function fit() {
    if (!source) return;
    const box = stage.getBoundingClientRect();
    state.zoom = Math.min(box.width / source.width, box.height / source.height);
    state.panX = (box.width - source.width * state.zoom) / 2;
    state.panY = (box.height - source.height * state.zoom) / 2;
    redraw();
  }

  function actualSize() {
    if (!source) return;
    const [x, y] = stageCentre();
    state.zoom = 1;
    state.panX = x - source.width / 2;
    state.panY = y - source.height / 2;
    redraw();
  }

  // ---- window/level ---------------------------------------------------------------------------
  function setWindow(center, width, presetKey) {
    state.center = Math.max(0, Math.min(255, center));
    state.width = Math.max(1, Math.min(512, width));
    centerInput.value = state.center;
    widthInput.value = state.width;
    presets.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.preset === presetKey)));
    applyWindow();
    redraw();
  }

  function setInvert(on) {
    state.invert = on;
    applyWindow();
    redraw();
  }

  function setOverlay(on) {
    if (!heat) return;
    state.overlay = on;
    redraw();
  }

  function reset() {
    state.invert = false;
    setWindow(Number(first.dataset.center), Number(first.dataset.width), first.dataset.preset);
    fit();
  }

  // ---- pointers: drag to pan, right/Shift-drag for W/L, two fingers to pinch ---------------------
  const pointers = new Map();
  let gesture = null;

  function local(event) {
    const box = stage.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  function startGesture(event) {
    const points = Array.from(pointers.values());
    if (points.length === 2) {
      const [a, b] = points;
      gesture = { kind: "pinch", distance: Math.hypot(a[0] - b[0], a[1] - b[1]) };
    } else if (points.length === 1) {
      const windowing = event.button === 2 || event.shiftKey || event.ctrlKey || event.altKey;
      gesture = {
        kind: windowing ? "window" : "pan",
        start: points[0], panX: state.panX, panY: state.panY,
        center: state.center, width: state.width,
      };
    } else {
      gesture = null;
    }
  }

  stage.addEventListener("pointerdown", (event) => {
    stage.focus();
    stage.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, local(event));
    startGesture(event);
    event.preventDefault();
  });

  stage.addEventListener("pointermove", (event) => {
    if (!pointers.has(event.pointerId) || !gesture) return;
    pointers.set(event.pointerId, local(event));
    const points = Array.from(pointers.values());
    if (gesture.kind === "pinch" && points.length === 2) {
      const [a, b] = points;
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (gesture.distance > 0) zoomAt(distance / gesture.distance, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      gesture.distance = distance;
    } else if (gesture.kind === "pan") {
      state.panX = gesture.panX + points[0][0] - gesture.start[0];
      state.panY = gesture.panY + points[0][1] - gesture.start[1];
      redraw();
    } else if (gesture.kind === "window") {
      // One screen pixel moves the window by one grey level (up = brighter = lower level).
      const dx = points[0][0] - gesture.start[0];
      const dy = points[0][1] - gesture.start[1];
      setWindow(gesture.center - dy, gesture.width + dx, null);
    }
  });

  function endPointer(event) {
    pointers.delete(event.pointerId);
    startGesture(event);
  }
  stage.addEventListener("pointerup", endPointer);
  stage.addEventListener("pointercancel", endPointer);
  stage.addEventListener("contextmenu", (event) => event.preventDefault());

  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [x, y] = local(event);
    // Pixel deltas from a mouse wheel notch are about 100; trackpads send many small ones.
    zoomAt(Math.exp(-event.deltaY * 0.0015), x, y);
  }, { passive: false });

  // ---- controls ------------------------------------------------------------------------------
  $("zoom-in").addEventListener("click", () => zoomTo(state.zoom * 1.25));
  $("zoom-out").addEventListener("click", () => zoomTo(state.zoom / 1.25));
  $("zoom-fit").addEventListener("click", fit);
  $("zoom-actual").addEventListener("click", actualSize);
  $("invert").addEventListener("click", () => setInvert(!state.invert));
  $("reset").addEventListener("click", reset);
  centerInput.addEventListener("input", () => setWindow(Number(centerInput.value), state.width, null));
  widthInput.addEventListener("input", () => setWindow(state.center, Number(widthInput.value), null));
  presets.forEach((button) => button.addEventListener("click", () => {
    setWindow(Number(button.dataset.center), Number(button.dataset.width), button.dataset.preset);
  }));
  const toggle = $("overlay-toggle");
  if (toggle) toggle.addEventListener("click", () => setOverlay(!state.overlay));
  const opacity = $("overlay-opacity");
  if (opacity) opacity.addEventListener("input", () => {
    state.opacity = Number(opacity.value) / 100;
    $("overlay-opacity-value").value = opacity.value + "%";
    if (!state.overlay) state.overlay = true;
    redraw();
  });

  function go(url) {
    if (url) window.location.assign(url);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // Keys a control uses stay the control's: a slider's arrows, anything typed into a field.
    const target = event.target;
    if (target.matches("select, textarea, input:not([type=range])")) return;
    if (target.matches("input[type=range]") && /^(Arrow|Page|Home|End)/.test(event.key)) return;
    const keys = {
      "+": () => zoomTo(state.zoom * 1.25), "=": () => zoomTo(state.zoom * 1.25),
      "-": () => zoomTo(state.zoom / 1.25), "_": () => zoomTo(state.zoom / 1.25),
      f: fit, "1": actualSize, i: () => setInvert(!state.invert), r: reset,
      o: () => setOverlay(!state.overlay),
      ArrowRight: () => go(stage.dataset.nextUrl), j: () => go(stage.dataset.nextUrl),
      ArrowLeft: () => go(stage.dataset.previousUrl), k: () => go(stage.dataset.previousUrl),
      Escape: () => go(stage.dataset.caseUrl),
    };
    const action = keys[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  window.addEventListener("resize", () => { resize(); redraw(); });

  // ---- start ------------------------------------------------------------------------------------
  resize();
  load(stage.dataset.imageUrl).then((img) => {
    const scratch = offscreen(img.naturalWidth, img.naturalHeight);
    const sctx = scratch.getContext("2d", { willReadFrequently: true });
    sctx.drawImage(img, 0, 0);
    source = sctx.getImageData(0, 0, scratch.width, scratch.height);
    processed = offscreen(scratch.width, scratch.height);
    applyWindow();
    fit();
    stage.dataset.state = "ready";
    if (!stage.dataset.overlayUrl) { publish(); return; }
    load(stage.dataset.overlayUrl).then((overlay) => {
      // The explanation is a coarse map (at most 128 px a side, the scan's aspect ratio): drawn
      // once at the scan's size with high-quality smoothing, so it reads as a smooth field, not
      // blocks, and stays registered with the scan's pixels at every zoom.
      heat = offscreen(source.width, source.height);
      const hctx = heat.getContext("2d");
      hctx.imageSmoothingEnabled = true;
      hctx.imageSmoothingQuality = "high";
      hctx.drawImage(overlay, 0, 0, heat.width, heat.height);
      stage.dataset.overlayReady = "true";
      redraw();
    }).catch(() => { stage.dataset.overlay = "error"; });
  }).catch(() => {
    stage.dataset.state = "error";
    stage.insertAdjacentHTML("beforeend", '<p class="error">The image could not be loaded.</p>');
  });
})();
