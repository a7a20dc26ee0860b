"use strict";
// attnviz report: everything below builds DOM with textContent only, so no input text is ever parsed as HTML.
const DATA = JSON.parse(document.getElementById("data").textContent);
const SPLIT = DATA.split || null;  // a corpus report: an index here, the items in script files loaded on demand
if (SPLIT) DATA.items = new Array(DATA.index.length);
const LUT = hexBytes(DATA.cmap);  // 256 x RGB, matplotlib's colormap
const CELL = 360;                 // head view side in CSS pixels
const cache = new Map();          // item index -> decoded attention (a few, most recent)
let current = null;               // {i, item, att, layer, head, hover}

function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}
function b64(s) {
  const bin = atob(s), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function predLabel(item) { return item.prediction && item.prediction.label != null ? String(item.prediction.label) : ""; }

// ---- index: cards, search, label filter; thumbnails drawn only when scrolled into view ----
function buildIndex() {
  const list = document.getElementById("list");
  const labels = new Set();
  const seen = new IntersectionObserver(entries => {
    for (const en of entries) if (en.isIntersecting) { drawThumb(en.target); seen.unobserve(en.target); }
  });
  const frag = document.createDocumentFragment();
  DATA.items.forEach((item, i) => {
    const card = el("article", "card");
    card.dataset.i = i;
    card.dataset.search = (String(item.id) + " " + (item.text || item.image || "")).toLowerCase();
    card.dataset.label = predLabel(item);
    const thumb = item.image_data ? el("img") : el("canvas");
    thumb.dataset.i = i;
    seen.observe(thumb);
    const body = el("div", "body");
    body.append(el("div", "id", item.id), el("div", "text", item.text || item.image || ""));
    if (predLabel(item)) body.append(el("span", "badge", predLabel(item)));
    labels.add(predLabel(item));
    card.append(thumb, body);
    card.addEventListener("click", () => openItem(i));
    frag.append(card);
  });
  list.append(frag);
  const select = document.getElementById("label-filter");
  [...labels].filter(Boolean).sort().forEach(l => { const o = el("option", null, l); o.value = l; select.append(o); });
  document.getElementById("search").addEventListener("input", filter);
  select.addEventListener("change", filter);
  filter();
}

// ---- a split report: item files (scripts: they load from file://) and a list that draws only the cards in view ----
const chunks = new Map();  // chunk number -> Promise of its load
window.attnvizChunk = (first, items) => items.forEach((item, k) => { DATA.items[first + k] = item; });

function loadItem(i) {
  if (DATA.items[i]) return Promise.resolve(DATA.items[i]);
  const c = Math.floor(i / SPLIT.chunk);
  if (!chunks.has(c)) chunks.set(c, new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = SPLIT.dir + "/items-" + String(c).padStart(5, "0") + ".js";
    s.onload = resolve;  // the script has run: its attnvizChunk call filled DATA.items
    s.onerror = () => { chunks.delete(c); reject(new Error("cannot load " + s.src)); };
    document.head.append(s);
  }));
  return chunks.get(c).then(() => DATA.items[i]);
}

const ROW = 61;  // a card's height in the virtual list (min-height 60px + its border)
let shownRows = [];  // index positions that pass the search and the label filter
let opened = -1;     // the item in the detail pane (its card is redrawn highlighted)

function buildVirtualIndex() {
  const list = document.getElementById("list"), spacer = el("div");
  spacer.style.position = "relative";
  list.append(spacer);
  const select = document.getElementById("label-filter");
  [...new Set(DATA.index.map(e => e.label == null ? "" : String(e.label)))].filter(Boolean).sort()
    .forEach(l => { const o = el("option", null, l); o.value = l; select.append(o); });
  let queued = false;
  list.addEventListener("scroll", () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; drawRows(); }); } });
  document.getElementById("search").addEventListener("input", filterIndex);
  select.addEventListener("change", filterIndex);
  filterIndex();
}

function filterIndex() {
  const q = document.getElementById("search").value.trim().toLowerCase();
  const label = document.getElementById("label-filter").value;
  shownRows = [];
  DATA.index.forEach((e, i) => {
    if ((!q || (String(e.id) + " " + e.text).toLowerCase().includes(q)) && (!label || String(e.label) === label)) shownRows.push(i);
  });
  document.getElementById("count").textContent = shownRows.length + " of " + DATA.index.length + " items";
  document.getElementById("list").scrollTop = 0;
  drawRows();
}

function drawRows() {
  const list = document.getElementById("list"), spacer = list.firstChild;
  spacer.style.height = shownRows.length * ROW + "px";
  const from = Math.max(0, Math.floor(list.scrollTop / ROW) - 4);
  const to = Math.min(shownRows.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 4);
  const cards = [];
  for (let k = from; k < to; k++) {
    const i = shownRows[k], e = DATA.index[i], card = el("article", "card");
    card.dataset.i = i;
    card.dataset.label = e.label == null ? "" : String(e.label);
    card.style.cssText = "position:absolute;left:0;right:0;top:" + k * ROW + "px;height:" + ROW + "px";
    if (opened === i) card.classList.add("active");
    const thumb = el("canvas"), body = el("div", "body");
    thumb.dataset.i = i;
    body.append(el("div", "id", e.id), el("div", "text", e.text));
    if (card.dataset.label) body.append(el("span", "badge", card.dataset.label));
    card.append(thumb, body);
    card.addEventListener("click", () => openItem(i));
    loadItem(i).then(item => { if (thumb.isConnected) { if (item.image_data) { const img = el("img"); img.dataset.i = i; thumb.replaceWith(img); drawThumb(img); } else drawThumb(thumb); } });
    cards.push(card);
  }
  spacer.replaceChildren(...cards);
}

function filter() {
  const q = document.getElementById("search").value.trim().toLowerCase();
  const label = document.getElementById("label-filter").value;
  let shown = 0;
  for (const card of document.querySelectorAll(".card")) {
    const ok = (!q || card.dataset.search.includes(q)) && (!label || card.dataset.label === label);
    card.hidden = !ok;
    shown += ok;
  }
  document.getElementById("count").textContent = shown + " of " + DATA.items.length + " items";
}

function drawThumb(node) {
  const item = DATA.items[+node.dataset.i];
  if (node.tagName === "IMG") { node.src = safeImage(item.image_data); return; }
  const t = item.thumb;
  drawMatrix(node, t.rows, t.cols, b64(t.data), 0, 1, 48);
}

function safeImage(src) { return typeof src === "string" && src.startsWith("data:image/") ? src : ""; }

// ---- heatmaps on canvas: one pixel per cell in an offscreen canvas, scaled up without smoothing ----
function drawMatrix(canvas, rows, cols, values, offset, scale, side) {
  const img = new ImageData(cols, rows);
  for (let k = 0; k < rows * cols; k++) {
    const c = Math.max(0, Math.min(255, Math.round(values[offset + k] * scale)));
    img.data[4 * k] = LUT[3 * c]; img.data[4 * k + 1] = LUT[3 * c + 1]; img.data[4 * k + 2] = LUT[3 * c + 2];
    img.data[4 * k + 3] = 255;
  }
  const off = document.createElement("canvas");
  off.width = cols; off.height = rows;
  off.getContext("2d").putImageData(img, 0, 0);
  const cell = Math.max(1, Math.floor(side / Math.max(rows, cols)));
  canvas.width = cols * cell; canvas.height = rows * cell;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  return cell;
}

async function decode(i) {
  if (cache.has(i)) return cache.get(i);
  const v = DATA.items[i].view;
  const stream = new Blob([b64(v.data)]).stream().pipeThrough(new DecompressionStream("deflate"));
  const q = new Uint8Array(await new Response(stream).arrayBuffer());
  const att = { L: v.layers.length, H: v.heads, n: v.n, layers: v.layers, scale: v.scale, q };
  cache.set(i, att);
  if (cache.size > 24) cache.delete(cache.keys().next().value);
  return att;
}

// (n, n) float matrix of one layer and head, or the head mean when head is -1
function matrix(att, layer, head) {
  const n = att.n, size = n * n, out = new Float32Array(size);
  const heads = head < 0 ? [...Array(att.H).keys()] : [head];
  for (const h of heads) {
    const m = layer * att.H + h, s = att.scale[m] / 255 / heads.length, base = m * size;
    for (let k = 0; k < size; k++) out[k] += att.q[base + k] * s;
  }
  return out;
}

// ---- a long input: its statistics views, drawn when the report was written ----
function openLong(item) {
  current = null;
  const d = document.getElementById("detail");
  d.replaceChildren();
  d.append(el("h2", null, item.text || item.id));
  d.append(el("div", "info", "id " + item.id + (predLabel(item) ? " · prediction " + predLabel(item) : "") +
    " · mean head entropy " + item.mean_entropy));
  (item.notes || []).forEach(n => d.append(el("div", "note", n)));
  const views = el("div", "views");
  for (const [name, caption] of [["overview", "pooled map (block means)"], ["positions", "along the positions"]]) {
    const fig = el("figure", "long");
    const img = el("img");
    img.src = safeImage(item.long[name]);
    img.alt = name;
    fig.append(img, el("figcaption", null, caption));
    views.append(fig);
  }
  d.append(views);
  d.append(attributionPanel(item));
}

// ---- one item ----
async function openItem(i) {
  document.querySelectorAll(".card.active").forEach(c => c.classList.remove("active"));
  const card = document.querySelector('.card[data-i="' + i + '"]');
  if (card) card.classList.add("active");
  opened = i;
  const item = SPLIT ? await loadItem(i) : DATA.items[i];
  if (item.long) { openLong(item); return; }
  const att = await decode(i);
  current = { i, item, att, layer: att.L - 1, head: 0, hover: -1 };
  const d = document.getElementById("detail");
  d.replaceChildren();
  d.append(el("h2", null, item.text || item.image || item.id));
  const facts = el("div", "info");
  const present = item.prediction && item.prediction.present;  // a multi-label model: every class above one half
  const predicted = present && present.length ? present.map(c => c.label + " (" + c.probability + ")").join(", ")
    : predLabel(item) ? predLabel(item) + (item.prediction.probability != null ? " (" + item.prediction.probability + ")" : "") : "";
  facts.textContent = "id " + item.id + (predicted ? " · prediction " + predicted : "") +
    (item.target ? " · target " + item.target : "") + " · mean head entropy " + item.mean_entropy;
  d.append(facts);
  (item.notes || []).forEach(n => d.append(el("div", "note", n)));
  d.append(controls(att));
  const views = el("div", "views");
  views.append(headPanel(), modelPanel(att));
  if (item.image_data) views.append(camPanel(item));
  d.append(views);
  d.append(attributionPanel(item));
  buildStrip(document.getElementById("tokens-to"));
  buildStrip(document.getElementById("tokens-from"));
  redraw();
}

function controls(att) {
  const box = el("div", "controls");
  const layer = el("select"); layer.id = "layer";
  att.layers.forEach((l, k) => { const o = el("option", null, "layer " + l); o.value = k; layer.append(o); });
  layer.value = current.layer;
  const head = el("select"); head.id = "head";
  const mean = el("option", null, "mean of heads"); mean.value = -1; head.append(mean);
  for (let h = 0; h < att.H; h++) { const o = el("option", null, "head " + h); o.value = h; head.append(o); }
  head.value = current.head;
  layer.addEventListener("change", () => { current.layer = +layer.value; redraw(); });
  head.addEventListener("change", () => { current.head = +head.value; redraw(); });
  box.append(el("label", null, "layer"), layer, el("label", null, "head"), head);
  return box;
}

function headPanel() {
  const box = el("div", "panel");
  box.append(el("h3", null, "head view"));
  const canvas = el("canvas", "heat"); canvas.id = "head-canvas";
  const info = el("div", "info"); info.id = "cell-info";
  canvas.addEventListener("mousemove", ev => {
    const { n } = current.att, cell = canvas.width / n;
    const q = Math.floor(ev.offsetY / cell), k = Math.floor(ev.offsetX / cell);
    if (q < 0 || k < 0 || q >= n || k >= n) return;
    const m = matrix(current.att, current.layer, current.head);
    info.textContent = current.item.tokens[q] + " → " + current.item.tokens[k] + ": " + m[q * n + k].toFixed(3);
  });
  box.append(canvas, info, el("div", "strip-label", "hover a token: where it attends (top), and from where it is attended (bottom)"));
  const tokens = el("div", "tokens"); tokens.id = "tokens-to";
  const from = el("div", "tokens"); from.id = "tokens-from";
  box.append(tokens, from);
  return box;
}

function buildStrip(box) {
  current.item.tokens.forEach((t, k) => {
    const span = el("span", "tok", t);
    span.dataset.i = k;
    span.addEventListener("mouseenter", () => { current.hover = k; redraw(); });
    box.append(span);
  });
}

// Colours the spans in place: rebuilding them under the pointer would re-fire mouseenter.
function paintStrip(box, values) {
  const max = values ? Math.max(...values) || 1 : 1;
  box.querySelectorAll(".tok").forEach((span, k) => {
    const v = values ? values[k] / max : 0, c = Math.round(v * 255);
    span.style.background = values ? "rgba(" + LUT[3 * c] + "," + LUT[3 * c + 1] + "," + LUT[3 * c + 2] + "," + (0.15 + 0.85 * v).toFixed(2) + ")" : "";
    span.style.color = v > 0.6 ? "#111" : "";
    span.title = values ? values[k].toFixed(3) : "";
    span.classList.toggle("on", k === current.hover);
  });
}

function redraw() {
  const { att, layer, head, hover } = current, n = att.n;
  const m = matrix(att, layer, head);
  let max = 0;
  for (const v of m) max = Math.max(max, v);
  const canvas = document.getElementById("head-canvas");
  const cell = drawMatrix(canvas, n, n, m, 0, 255 / (max || 1), CELL);
  canvas.dataset.view = layer + ":" + head;
  if (hover >= 0) {
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    ctx.strokeRect(0, hover * cell, n * cell, cell);
    ctx.strokeRect(hover * cell, 0, cell, n * cell);
  }
  const row = hover >= 0 ? m.slice(hover * n, hover * n + n) : null;
  const col = hover >= 0 ? Array.from({ length: n }, (_, q) => m[q * n + hover]) : null;
  paintStrip(document.getElementById("tokens-to"), row);
  paintStrip(document.getElementById("tokens-from"), col);
  drawModel();
}

function modelPanel(att) {
  const box = el("div", "panel");
  box.append(el("h3", null, "model view (layers × heads; click to choose)"));
  const canvas = el("canvas", "heat"); canvas.id = "model-canvas";
  canvas.addEventListener("click", ev => {
    const s = canvas.width / att.H;
    current.layer = Math.min(att.L - 1, Math.floor(ev.offsetY / s));
    current.head = Math.min(att.H - 1, Math.floor(ev.offsetX / s));
    document.getElementById("layer").value = current.layer;
    document.getElementById("head").value = current.head;
    redraw();
  });
  box.append(canvas);
  return box;
}

function drawModel() {
  const { att } = current, canvas = document.getElementById("model-canvas");
  const s = Math.max(24, Math.min(56, Math.floor(720 / att.H)));
  canvas.width = att.H * s; canvas.height = att.L * s;
  const ctx = canvas.getContext("2d");
  const tile = document.createElement("canvas");
  for (let l = 0; l < att.L; l++) for (let h = 0; h < att.H; h++) {
    drawMatrix(tile, att.n, att.n, att.q, (l * att.H + h) * att.n * att.n, 1, s - 2);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, h * s + 1, l * s + 1, s - 2, s - 2);
  }
  if (current.head >= 0) {
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    ctx.strokeRect(current.head * s + 1, current.layer * s + 1, s - 2, s - 2);
  }
}

function attributionPanel(item) {
  const box = el("div", "panel");
  const methods = Object.keys(item.attribution || {});
  if (!methods.length) return box;
  box.append(el("h3", null, "attribution (red supports the target, blue opposes it)"));
  for (const name of methods) {
    const a = item.attribution[name], max = Math.max(...a.scores.map(Math.abs)) || 1;
    const row = el("div", "tokens");
    row.dataset.method = name;
    const label = name + (a.faithfulness != null ? " · faithfulness " + JSON.stringify(a.faithfulness) : "");
    box.append(el("div", "strip-label", label));
    a.tokens.forEach((t, k) => {
      const v = a.scores[k] / max, span = el("span", "tok", t);
      span.style.background = v >= 0 ? "rgba(214,39,40," + v.toFixed(2) + ")" : "rgba(31,119,180," + (-v).toFixed(2) + ")";
      span.title = a.scores[k].toFixed(4);
      row.append(span);
    });
    box.append(row);
  }
  return box;
}

function camPanel(item) {
  const box = el("div", "panel");
  box.append(el("h3", null, item.cam ? "image with CAM overlay (" + item.cam.method + ")" : "image"));
  const canvas = el("canvas", "heat"); canvas.id = "cam-canvas";
  const img = new Image();
  img.onload = () => {
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    if (!item.cam) return;
    const t = item.cam, over = document.createElement("canvas"), box = t.box || [0, 0, 1, 1];
    drawMatrix(over, t.rows, t.cols, b64(t.data), 0, 1, Math.max(t.rows, t.cols));
    ctx.globalAlpha = 0.5; ctx.imageSmoothingEnabled = true;
    // the box is the part of the image the model saw (a centre crop for some processors)
    ctx.drawImage(over, box[0] * img.width, box[1] * img.height, (box[2] - box[0]) * img.width, (box[3] - box[1]) * img.height);
  };
  img.src = safeImage(item.image_data);
  box.append(canvas);
  return box;
}

if (SPLIT) buildVirtualIndex(); else buildIndex();
