// attnviz notebook view: one output cell, scoped to its own root element (no ids, no globals), DOM built with
// textContent only so that no token is ever parsed as HTML. The data arrive zlib-compressed as in the report and
// are inflated with DecompressionStream; until the view is drawn the static picture above it stays visible.
function attnvizView(root) {
  "use strict";
  if (!root || root.dataset.state === "drawn" || root.dataset.state === "drawing") return;  // a re-run output
  root.dataset.state = "drawing";
  const DATA = JSON.parse(root.querySelector("script.av-data").textContent);
  const LUT = hexBytes(DATA.cmap);
  const SIDE = 360;  // head and overview canvases: longest side in CSS pixels
  const live = root.querySelector(".av-live"), still = root.querySelector(".av-static");
  const state = { layer: DATA.layer, head: DATA.head, hover: -1, axis: "q" };

  function hexBytes(hex) {
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fail(why) {
    root.dataset.state = "failed";
    still.prepend(el("div", "av-note", "interactive view unavailable (" + why + "); the picture is static"));
  }
  async function inflate(pack) {
    const bin = atob(pack.data), raw = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) raw[i] = bin.charCodeAt(i);
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    const q = new Uint8Array(await new Response(stream).arrayBuffer());
    // row r, column c -> lo[r] + q * (hi[r] - lo[r]) / 255
    return { rows: pack.rows, cols: pack.cols, lo: pack.lo, hi: pack.hi, q,
             row(r) { const out = new Float32Array(this.cols), s = (this.hi[r] - this.lo[r]) / 255, b = r * this.cols;
                      for (let c = 0; c < this.cols; c++) out[c] = this.lo[r] + this.q[b + c] * s; return out; } };
  }
  // one (layer, head) matrix, or the mean of the heads when head is -1
  function pick(pack, layer, head) {
    const H = DATA.heads.length, heads = head < 0 ? [...Array(H).keys()] : [head];
    const out = new Float32Array(pack.cols);
    for (const h of heads) { const r = pack.row(layer * H + h); for (let k = 0; k < out.length; k++) out[k] += r[k] / heads.length; }
    return out;
  }
  // rows x cols values on a canvas, one cell per value, scaled to the maximum
  function paint(canvas, rows, cols, values, side) {
    let max = 0;
    for (const v of values) max = Math.max(max, v);
    const img = new ImageData(cols, rows);
    for (let k = 0; k < rows * cols; k++) {
      const c = Math.max(0, Math.min(255, Math.round(values[k] / (max || 1) * 255)));
      img.data.set([LUT[3 * c], LUT[3 * c + 1], LUT[3 * c + 2], 255], 4 * k);
    }
    const off = document.createElement("canvas");
    off.width = cols; off.height = rows;
    off.getContext("2d").putImageData(img, 0, 0);
    const cell = Math.max(1, Math.floor(side / Math.max(rows, cols)));
    canvas.width = cols * cell; canvas.height = rows * cell;
    canvas.style.width = Math.min(canvas.width, side + 120) + "px";
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    return cell;
  }
  // the cell under the pointer, whatever the canvas's CSS size
  function cellAt(canvas, ev, rows, cols) {
    const box = canvas.getBoundingClientRect();
    const r = Math.floor((ev.clientY - box.top) / box.height * rows), c = Math.floor((ev.clientX - box.left) / box.width * cols);
    return r >= 0 && c >= 0 && r < rows && c < cols ? [r, c] : null;
  }
  function controls(redraw) {
    const box = el("div", "av-controls");
    const layer = el("select", "av-layer"), head = el("select", "av-head");
    DATA.layers.forEach((l, k) => { const o = el("option", null, "layer " + l); o.value = k; layer.append(o); });
    const mean = el("option", null, "mean of heads"); mean.value = -1; head.append(mean);
    DATA.heads.forEach((h, k) => { const o = el("option", null, "head " + h); o.value = k; head.append(o); });
    layer.value = state.layer; head.value = state.head;
    layer.addEventListener("change", () => { state.layer = +layer.value; redraw(); });
    head.addEventListener("change", () => { state.head = +head.value; redraw(); });
    box.append(el("label", null, "layer"), layer, el("label", null, "head"), head);
    state.sync = () => { layer.value = state.layer; head.value = state.head; };
    return box;
  }
  function strip(tokens, axis, redraw) {
    const box = el("div", "av-tokens");
    box.dataset.axis = axis;
    tokens.forEach((t, k) => {
      const span = el("span", "av-tok", t);
      span.addEventListener("mouseenter", () => { state.hover = k; state.axis = axis; redraw(); });
      box.append(span);
    });
    return box;
  }
  // colours the spans in place: rebuilding them under the pointer would fire mouseenter again
  function tint(box, values, on) {
    let max = 0;
    if (values) for (const v of values) max = Math.max(max, v);
    box.querySelectorAll(".av-tok").forEach((span, k) => {
      const v = values ? values[k] / (max || 1) : 0, c = Math.round(v * 255);
      span.style.background = values ? "rgba(" + LUT[3 * c] + "," + LUT[3 * c + 1] + "," + LUT[3 * c + 2] + "," + (0.15 + 0.85 * v).toFixed(2) + ")" : "";
      span.style.color = values && v > 0.6 ? "#111" : "";
      span.title = values ? values[k].toFixed(3) : "";
      span.classList.toggle("on", k === on);
    });
  }

  // ---- full weights: head view (queries down, keys across) and model view (layers x heads) ----
  function attention(att) {
    const Q = DATA.queries.length, K = DATA.keys.length, L = DATA.layers.length, H = DATA.heads.length;
    const head = el("canvas", "av-heat av-head-canvas"), model = el("canvas", "av-heat av-model-canvas");
    const info = el("div", "av-info");
    const redraw = () => {
      const m = pick(att, state.layer, state.head);
      if (DATA.view !== "model") {
        const cell = paint(head, Q, K, m, SIDE);
        head.dataset.view = state.layer + ":" + state.head;
        const ctx = head.getContext("2d");
        ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
        if (state.hover >= 0 && state.axis === "q") ctx.strokeRect(0, state.hover * cell, K * cell, cell);
        if (state.hover >= 0 && state.axis === "k") ctx.strokeRect(state.hover * cell, 0, cell, Q * cell);
        const row = state.hover >= 0 && state.axis === "q" ? m.slice(state.hover * K, state.hover * K + K) : null;
        const col = state.hover >= 0 && state.axis === "k" ? Array.from({ length: Q }, (_, q) => m[q * K + state.hover]) : null;
        tint(qs, col, state.axis === "q" ? state.hover : -1);
        tint(ks, row, state.axis === "k" ? state.hover : -1);
      }
      if (DATA.view !== "head") drawModel();
      state.sync();
    };
    function drawModel() {
      const s = Math.max(DATA.view === "model" ? 40 : 24, Math.min(DATA.view === "model" ? 96 : 56, Math.floor(720 / H)));
      model.width = H * s; model.height = L * s;
      model.dataset.view = state.layer + ":" + state.head;
      const ctx = model.getContext("2d"), tile = document.createElement("canvas");
      for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {
        paint(tile, Q, K, att.row(l * H + h), s - 2);
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(tile, h * s + 1, l * s + 1, s - 2, s - 2);
      }
      ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
      if (state.head >= 0) ctx.strokeRect(state.head * s + 1, state.layer * s + 1, s - 2, s - 2);
      else ctx.strokeRect(1, state.layer * s + 1, H * s - 2, s - 2);
    }
    head.addEventListener("mousemove", ev => {
      const at = cellAt(head, ev, Q, K);
      if (!at) return;
      const m = pick(att, state.layer, state.head);
      info.textContent = DATA.queries[at[0]] + " → " + DATA.keys[at[1]] + ": " + m[at[0] * K + at[1]].toFixed(3);
    });
    model.addEventListener("click", ev => {
      const at = cellAt(model, ev, L, H);
      if (at) { state.layer = at[0]; state.head = at[1]; redraw(); }
    });
    model.addEventListener("mousemove", ev => {
      const at = cellAt(model, ev, L, H);
      if (at) info.textContent = "layer " + DATA.layers[at[0]] + ", head " + DATA.heads[at[1]] + " (click to choose)";
    });
    const qs = strip(DATA.queries, "q", () => redraw()), ks = strip(DATA.keys, "k", () => redraw());
    live.append(controls(redraw));
    const views = el("div", "av-views");
    if (DATA.view !== "model") {
      const panel = el("div", "av-panel");
      panel.append(el("div", "av-title", "head view: queries down, keys across"), head, info,
                   el("div", "av-label", "queries (hover: where it attends, in the keys below)"), qs,
                   el("div", "av-label", "keys (hover: who attends to it, in the queries above)"), ks);
      views.append(panel);
    } else views.append(info);
    if (DATA.view !== "head") {
      const panel = el("div", "av-panel");
      panel.append(el("div", "av-title", "model view: layers down, heads across; click to choose"), model);
      views.append(panel);
    }
    live.append(views);
    redraw();
  }

  // ---- per-head statistics: pooled overview and the curves along the positions ----
  function statistics(packs) {
    const info = el("div", "av-info"), over = el("canvas", "av-heat av-overview-canvas");
    const pos = DATA.positions, curves = {};
    const redraw = () => {
      if (packs.overview) {
        paint(over, DATA.grid[0], DATA.grid[1], pick(packs.overview, state.layer, state.head), SIDE);
        over.dataset.view = state.layer + ":" + state.head;
      }
      for (const name in curves) line(curves[name], name);
      state.sync();
    };
    function line(canvas, name) {
      const p = packs[name], H = DATA.heads.length, w = canvas.width, h = canvas.height;
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, w, h);
      canvas.dataset.view = state.layer + ":" + state.head;
      const series = [pick(p, state.layer, -1), state.head >= 0 ? p.row(state.layer * H + state.head) : null];
      let lo = Infinity, hi = -Infinity;
      for (const s of series) if (s) for (const v of s) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const span = hi - lo || 1;
      series.forEach((s, k) => {
        if (!s) return;
        ctx.strokeStyle = k ? "#2a6fdb" : "#999"; ctx.lineWidth = 1.2; ctx.beginPath();
        s.forEach((v, i) => { const x = (i + 0.5) / s.length * w, y = h - 4 - (v - lo) / span * (h - 8); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
        ctx.stroke();
      });
    }
    over.addEventListener("mousemove", ev => {
      const at = cellAt(over, ev, DATA.grid[0], DATA.grid[1]);
      if (!at) return;
      const [rq, rk] = DATA.grid, qa = Math.floor(at[0] * DATA.qlen / rq), ka = Math.floor(at[1] * DATA.klen / rk);
      const v = pick(packs.overview, state.layer, state.head)[at[0] * rk + at[1]];
      info.textContent = "queries " + qa + "–" + (Math.floor((at[0] + 1) * DATA.qlen / rq) - 1) + " → keys " + ka + "–" +
        (Math.floor((at[1] + 1) * DATA.klen / rk) - 1) + ": mean " + v.toPrecision(3);
    });
    live.append(controls(redraw));
    const views = el("div", "av-views");
    if (packs.overview) {
      const panel = el("div", "av-panel");
      panel.append(el("div", "av-title", "overview: block means of the " + DATA.qlen + " × " + DATA.klen + " map"), over, info);
      views.append(panel);
    }
    if (pos) {
      const panel = el("div", "av-panel");
      panel.append(el("div", "av-title", "along the " + pos.n + " positions: chosen head (blue), mean of heads (grey)"));
      for (const [name, label] of pos.labels) {
        const c = el("canvas", "av-curve"); c.width = 480; c.height = 90; c.dataset.stat = name;
        c.addEventListener("mousemove", ev => {
          const box = c.getBoundingClientRect(), b = Math.floor((ev.clientX - box.left) / box.width * pos.bins);
          const first = Math.floor(b * pos.n / pos.bins), tok = pos.tokens ? pos.tokens[first] : null;
          const v = state.head >= 0 ? packs[name].row(state.layer * DATA.heads.length + state.head)[b] : pick(packs[name], state.layer, -1)[b];
          info2.textContent = label + " at position " + first + (tok !== null && tok !== undefined ? " (" + tok + ")" : "") + ": " + v.toPrecision(3);
        });
        curves[name] = c;
        panel.append(el("div", "av-label", label), c);
      }
      const info2 = el("div", "av-info");
      panel.append(info2);
      views.append(panel);
    }
    live.append(views);
    redraw();
  }

  if (typeof DecompressionStream === "undefined") { fail("this browser has no DecompressionStream"); return; }
  const names = Object.keys(DATA.packs);
  Promise.all(names.map(n => inflate(DATA.packs[n]))).then(done => {
    const packs = {};
    names.forEach((n, k) => { packs[n] = done[k]; });
    (DATA.kind === "attention" ? attention(packs.att) : statistics(packs));
    still.hidden = true; live.hidden = false;
    root.dataset.state = "drawn";
  }).catch(err => fail(String(err && err.message || err)));
}
