"""The web page's HTML and JavaScript (explorer.export.web fills in the model).

Plain JS, no library and nothing fetched: the Content-Security-Policy forbids every
request, so the page works from a USB stick or an e-mail attachment and cannot leak what
it shows. Text from files (class names, the title) only ever reaches the page as
``textContent``, never as markup.

``@@TITLE@@`` (HTML-escaped) and ``@@DATA@@`` (JSON with ``<`` escaped) are replaced.
"""

from __future__ import annotations

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.2em; color: #222; background: #fafafa; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  .about { color: #555; margin: 0 0 1em; max-width: 60em; }
  .row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
  #plane { width: 480px; height: 480px; border: 1px solid #bbb; background: #fff; cursor: crosshair;
           touch-action: none; }
  #plane:focus { outline: 2px solid #4a90d9; }
  #image { border: 1px solid #bbb; image-rendering: pixelated; image-rendering: crisp-edges; background: #000; }
  #legend { display: flex; flex-wrap: wrap; gap: .3em .9em; max-width: 480px; margin-top: .4em; font-size: .9em; }
  #legend span.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; border-radius: 50%; }
  #code { font: 12px/1.3 ui-monospace, monospace; white-space: pre-wrap; max-width: 300px; color: #444; }
  label { display: block; margin: .6em 0; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1 id="title"></h1>
<p class="about" id="about"></p>
<div class="row">
  <div>
    <canvas id="plane" width="480" height="480" tabindex="0"
            aria-label="The latent plane: drag the marker, or use the arrow keys"></canvas>
    <div id="legend"></div>
  </div>
  <div>
    <canvas id="image" aria-label="The decoded image"></canvas>
    <label id="class-row" hidden>Class <select id="class"></select></label>
    <div id="code"></div>
  </div>
</div>
<script type="application/json" id="model-data">@@DATA@@</script>
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("model-data").textContent);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];

  function floats(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);  // little-endian, as written
  }

  const D = data.latent_dim;
  const [C, H, W] = data.image_shape;
  const K = data.num_classes;
  const conditional = data.conditional;
  const layers = data.layers.map(l => ({inputs: l.inputs, outputs: l.outputs, weight: floats(l.weight),
                                         bias: floats(l.bias), activation: l.activation}));
  const origin = data.origin;            // D numbers: the code at the plane's (0, 0)
  const axes = data.axes;                // 2 rows of D numbers: the plane's directions in code space
  const pointsX = floats(data.points_x), pointsY = floats(data.points_y);
  const labels = data.labels;            // one class per point, or null
  const [xMin, xMax, yMin, yMax] = data.extent;

  // -- the decoder: Linear layers, ReLU between them, a sigmoid at the end ------------------
  const ACTIVATIONS = {
    relu: s => (s > 0 ? s : 0),
    sigmoid: s => 1 / (1 + Math.exp(-s)),
    linear: s => s,
  };

  let currentClass = 0;

  function decode(code, label) {
    if (code === null || code === undefined || typeof code.length !== "number") {
      throw new TypeError("decode takes an array of " + D + " numbers");
    }
    if (code.length !== D) throw new RangeError("decode takes " + D + " numbers, not " + code.length);
    let x = new Float64Array(D + (conditional ? K : 0));
    for (let i = 0; i < D; i++) {
      const v = Number(code[i]);
      if (!Number.isFinite(v)) throw new RangeError("code[" + i + "] is not a finite number");
      x[i] = v;
    }
    if (conditional) {
      const k = label === undefined ? currentClass : Number(label);
      if (!Number.isInteger(k) || k < 0 || k >= K) throw new RangeError("the class is a whole number 0 to " + (K - 1));
      x[D + k] = 1;
    }
    for (const layer of layers) {
      const y = new Float64Array(layer.outputs);
      const f = ACTIVATIONS[layer.activation];
      const n = layer.inputs, w = layer.weight;
      for (let o = 0; o < layer.outputs; o++) {
        let s = layer.bias[o];
        const row = o * n;
        for (let i = 0; i < n; i++) s += w[row + i] * x[i];
        y[o] = f(s);
      }
      x = y;
    }
    return Array.from(x);  // C*H*W pixels in [0, 1], row-major (channel, row, column)
  }

  // -- the plane: code = origin + x * axes[0] + y * axes[1] -----------------------------------
  function lift(p) {
    const code = new Array(D);
    for (let d = 0; d < D; d++) code[d] = origin[d] + p[0] * axes[0][d] + p[1] * axes[1][d];
    return code;
  }

  const plane = document.getElementById("plane");
  const ctx = plane.getContext("2d");
  const SIDE = plane.width;
  const toCanvas = p => [(p[0] - xMin) / (xMax - xMin) * SIDE, (1 - (p[1] - yMin) / (yMax - yMin)) * SIDE];
  const fromCanvas = (cx, cy) => [xMin + cx / SIDE * (xMax - xMin), yMin + (1 - cy / SIDE) * (yMax - yMin)];
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  const dots = document.createElement("canvas");
  dots.width = dots.height = SIDE;
  (function drawDots() {
    const g = dots.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, SIDE, SIDE);
    g.strokeStyle = "#e4e4e4";
    const [ox, oy] = toCanvas([0, 0]);
    g.beginPath(); g.moveTo(ox, 0); g.lineTo(ox, SIDE); g.moveTo(0, oy); g.lineTo(SIDE, oy); g.stroke();
    g.globalAlpha = 0.7;
    for (let i = 0; i < pointsX.length; i++) {
      const [cx, cy] = toCanvas([pointsX[i], pointsY[i]]);
      g.fillStyle = labels ? PALETTE[((labels[i] % PALETTE.length) + PALETTE.length) % PALETTE.length] : "#555";
      g.fillRect(cx - 1.5, cy - 1.5, 3, 3);
    }
  })();

  let point = [clamp(data.start[0], xMin, xMax), clamp(data.start[1], yMin, yMax)];
  let code = lift(point);
  let pixels = decode(code);

  function drawPlane() {
    ctx.drawImage(dots, 0, 0);
    const [cx, cy] = toCanvas(point);
    ctx.beginPath();
    ctx.arc(cx, cy, 7, 0, 2 * Math.PI);
    ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
    ctx.fill();
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#111";
    ctx.stroke();
  }

  const image = document.getElementById("image");
  image.width = W;
  image.height = H;
  const scale = Math.max(1, Math.floor(280 / Math.max(H, W)));
  image.style.width = (W * scale) + "px";
  image.style.height = (H * scale) + "px";
  const imageCtx = image.getContext("2d");
  const frame = imageCtx.createImageData(W, H);

  function drawImage() {
    const area = H * W;
    for (let i = 0; i < area; i++) {
      for (let c = 0; c < 3; c++) {
        frame.data[4 * i + c] = Math.round(255 * pixels[(C === 3 ? c : 0) * area + i]);
      }
      frame.data[4 * i + 3] = 255;
    }
    imageCtx.putImageData(frame, 0, 0);
  }

  const readout = document.getElementById("code");
  function drawCode() {
    const shown = code.slice(0, 8).map(v => v.toFixed(3)).join(", ");
    readout.textContent = "code (" + D + " numbers): [" + shown + (D > 8 ? ", ..." : "") + "]";
  }

  function setPoint(p) {
    point = [clamp(p[0], xMin, xMax), clamp(p[1], yMin, yMax)];
    code = lift(point);
    pixels = decode(code);
    drawPlane();
    drawImage();
    drawCode();
  }

  // -- dragging: press anywhere on the plane, the marker jumps there and follows -------------
  let dragging = null;
  function pointerPoint(e) {
    const r = plane.getBoundingClientRect();
    return fromCanvas((e.clientX - r.left) / r.width * SIDE, (e.clientY - r.top) / r.height * SIDE);
  }
  plane.addEventListener("pointerdown", e => {
    if (e.button !== 0) return;
    dragging = e.pointerId;
    plane.setPointerCapture(e.pointerId);
    plane.focus();
    setPoint(pointerPoint(e));
    e.preventDefault();
  });
  plane.addEventListener("pointermove", e => { if (e.pointerId === dragging) setPoint(pointerPoint(e)); });
  const release = e => { if (e.pointerId === dragging) dragging = null; };
  plane.addEventListener("pointerup", release);
  plane.addEventListener("pointercancel", release);
  plane.addEventListener("keydown", e => {
    const step = 0.02, dx = (xMax - xMin) * step, dy = (yMax - yMin) * step;
    const moves = {ArrowLeft: [-dx, 0], ArrowRight: [dx, 0], ArrowUp: [0, dy], ArrowDown: [0, -dy]};
    const m = moves[e.key];
    if (!m) return;
    setPoint([point[0] + m[0], point[1] + m[1]]);
    e.preventDefault();
  });

  // -- text: title, about, legend and the class chooser (all through textContent) -------------
  document.getElementById("title").textContent = data.title;
  document.getElementById("about").textContent = data.about;
  const legend = document.getElementById("legend");
  for (const [k, name] of data.legend) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = PALETTE[k % PALETTE.length];
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(name));
    legend.appendChild(item);
  }
  if (conditional) {
    const row = document.getElementById("class-row"), select = document.getElementById("class");
    for (let k = 0; k < K; k++) {
      const option = document.createElement("option");
      option.value = String(k);
      option.textContent = data.class_names[k] !== undefined ? data.class_names[k] : String(k);
      select.appendChild(option);
    }
    select.addEventListener("change", () => { currentClass = Number(select.value); setPoint(point); });
    row.hidden = false;
  }

  setPoint(point);

  // -- for scripts and tests ---------------------------------------------------------------
  window.latentExplorer = Object.freeze({
    decode,
    code: () => code.slice(),
    point: () => point.slice(),
    image: () => pixels.slice(),
    lift: p => lift(p),
    setClass: k => {
      if (!conditional) throw new Error("this model has no classes");
      const select = document.getElementById("class");
      select.value = String(k);
      select.dispatchEvent(new Event("change"));
    },
    clientPoint: p => {
      const r = plane.getBoundingClientRect();
      const [cx, cy] = toCanvas(p);
      return {x: r.left + cx / SIDE * r.width, y: r.top + cy / SIDE * r.height};
    },
    info: Object.freeze({latentDim: D, imageShape: [C, H, W], conditional, numClasses: K,
                         extent: [xMin, xMax, yMin, yMax]}),
  });
})();
</script>
</body>
</html>
"""
