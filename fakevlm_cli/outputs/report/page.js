(() => {
  "use strict";
  // Every string from the records is shown with textContent: nothing from the data is ever parsed as HTML.
  const $ = (id) => document.getElementById(id);
  const meta = JSON.parse($("fakevlm-meta").textContent);
  const records = JSON.parse($("fakevlm-data").textContent).records;
  const PAGE = meta.page_size;
  const VERDICTS = ["fake", "real", "unknown", "error"];
  const RAMP = meta.ramp;
  const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
  const state = { verdicts: new Set(VERDICTS), query: "", sort: "input", page: 0, wrongOnly: false };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pct(p) {
    if (p === null || p === undefined) return "\u2014";
    if (p > 0 && p < 0.0005) return "<0.1%";
    if (p >= 0.9995 && p < 1) return ">99.9%";
    return (p * 100).toFixed(1) + "%";
  }

  function place(node, box) { // box: fractions [x0, y0, x1, y1] of the picture
    node.style.left = (box[0] * 100) + "%";
    node.style.top = (box[1] * 100) + "%";
    node.style.width = ((box[2] - box[0]) * 100) + "%";
    node.style.height = ((box[3] - box[1]) * 100) + "%";
  }

  function colour(v) {
    for (let i = 1; i < RAMP.length; i++) {
      const [s1, c1] = RAMP[i];
      const [s0, c0] = RAMP[i - 1];
      if (v <= s1) {
        const t = (v - s0) / (s1 - s0 || 1);
        return c0.map((c, k) => Math.round(c + (c1[k] - c) * t));
      }
    }
    return RAMP[RAMP.length - 1][1];
  }

  function heat(loc) {
    if (!B64.test(loc.g)) return null;
    const bytes = atob(loc.g);
    if (bytes.length !== loc.rows * loc.cols) return null;
    const canvas = el("canvas", "heat");
    canvas.width = loc.cols;
    canvas.height = loc.rows;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(loc.cols, loc.rows);
    for (let i = 0; i < bytes.length; i++) {
      const v = bytes.charCodeAt(i) / 255;
      const [r, g, b] = colour(v);
      image.data.set([r, g, b, Math.round(v * 200)], i * 4);
    }
    ctx.putImageData(image, 0, 0);
    place(canvas, loc.crop);
    canvas.setAttribute("aria-hidden", "true");
    return canvas;
  }

  function secs(t) { return (t === null || t === undefined) ? "?" : t.toFixed(t < 10 ? 2 : 1) + " s"; }

  function strip(v) { // a clip: each sampled frame's P(fake) at its time; the most suspicious one marked
    const box = el("div", "strip");
    box.setAttribute("role", "img");
    const last = v.frames.reduce((m, f) => Math.max(m, f.t), 0);
    const span = Math.max(v.duration || 0, last, 1e-3);
    const width = Math.max(0.6, Math.min(6, 70 / Math.max(1, v.frames.length)));
    if (meta.threshold !== null && meta.threshold !== undefined) {
      const line = el("div", "threshold");
      line.style.bottom = (meta.threshold * 100) + "%";
      line.title = "threshold " + pct(meta.threshold);
      box.append(line);
    }
    v.frames.forEach((f) => {
      const top = v.top && f.t === v.top.t;
      const bar = el("div", "frame " + (f.p === null ? "noverdict" : (meta.threshold !== null && f.p >= meta.threshold ? "hi" : "lo")) +
        (top ? " top" : ""));
      bar.style.left = (f.t / span * (100 - width)) + "%";
      bar.style.width = width + "%";
      bar.style.height = Math.max(2, (f.p || 0) * 100) + "%";
      bar.title = secs(f.t) + ": P(fake) " + pct(f.p) + (top ? " (most suspicious)" : "");
      if (top) bar.append(el("span", "mark", "\u25bc"));
      box.append(bar);
    });
    box.setAttribute("aria-label", "P(fake) of " + v.frames.length + " sampled frames over " + secs(span));
    const wrap = el("div", "clip");
    wrap.append(el("div", "cliphead", "Video \u00b7 P(fake) frame by frame"));
    wrap.append(box);
    const axis = el("div", "axis");
    axis.append(el("span", "", "0 s"), el("span", "", secs(span)));
    wrap.append(axis);
    wrap.append(el("div", "caption", "One bar a sampled frame, its height P(fake); \u25bc the most suspicious " +
      "frame; dashed: the threshold."));
    return wrap;
  }

  function clipLines(v) {
    const lines = [];
    const judged = v.frames.filter((f) => f.p !== null).length;
    if (v.frames.length) {
      lines.push(v.frames.length + " frames sampled over " + secs(v.duration) +
        (judged < v.frames.length ? " (" + (v.frames.length - judged) + " without a verdict, grey)" : "") +
        (v.aggregate ? "; the clip's P(fake): " + v.aggregate : ""));
    }
    else if (v.frame) lines.push("one frame judged: at " + secs(v.frame.t));
    else lines.push("no frame judged" + (v.duration !== null ? " (" + secs(v.duration) + " clip)" : ""));
    if (v.top) lines.push("most suspicious frame: at " + secs(v.top.t) + ", P(fake) " + pct(v.top.p));
    if (v.explained) lines.push("the explanation is about the frame at " + secs(v.explained.t));
    if (v.facts) lines.push(v.facts);
    return lines;
  }

  function figure(r) {
    const fig = el("div", "figure");
    if (r.video && r.video.frames.length) {
      fig.classList.add("video");
      if (r.thumb && B64.test(r.thumb) && r.video.top) { // scan --report keeps the most suspicious frame
        const img = el("img");
        img.alt = "the most suspicious frame";
        img.src = "data:image/jpeg;base64," + r.thumb;
        fig.append(img, el("div", "caption", "The most suspicious frame, at " + secs(r.video.top.t) + "."));
      }
      fig.append(strip(r.video));
    } else if (r.media === "video") {
      fig.append(el("div", "none", "video clip \u00b7 " + (r.video && r.video.frame ? "one frame judged, at " + secs(r.video.frame.t) : "no frame judged")));
    } else if (r.thumb && B64.test(r.thumb)) {
      const img = el("img");
      img.alt = "thumbnail";
      img.decoding = "async";
      img.src = "data:image/jpeg;base64," + r.thumb;
      fig.append(img);
    } else {
      fig.append(el("div", "none", r.thumb_note || "no picture"));
    }
    if (r.loc && r.thumb) {
      const map = heat(r.loc);
      if (map) fig.append(map);
      const crop = el("div", "crop");
      crop.title = "the part of the image the model saw";
      place(crop, r.loc.crop);
      fig.append(crop);
      r.loc.regions.forEach((region, n) => {
        const box = el("div", "region");
        box.append(el("span", "", String(n + 1)));
        place(box, region.box);
        fig.append(box);
      });
    }
    const wrap = el("div");
    wrap.append(fig);
    if (r.loc) {
      wrap.append(el("div", "caption", "Outlined: the centre crop the model saw (shaded: never seen). " +
        "Colour: " + r.loc.explains + " (" + r.loc.method + ")."));
    }
    return wrap;
  }

  function section(title, items, cls) {
    if (!items || !items.length) return null;
    const box = el("div", "section");
    box.append(el("b", "", title));
    const list = el("ul");
    items.forEach((item) => {
      const li = el("li", cls || "", typeof item === "string" ? item : item.text);
      if (item.strong) li.classList.add("strong");
      list.append(li);
    });
    box.append(list);
    return box;
  }

  function where(loc) {
    const lines = loc.regions.map((g, n) => "region " + (n + 1) + ": " + g.px + ", " +
      Math.round(g.score * 100) + "% of the map");
    if (loc.note) lines.push(loc.note);
    if (loc.heatmap) lines.push("heatmap picture: " + loc.heatmap);
    return lines;
  }

  function folded(title, node) {
    if (!node) return null;
    const details = el("details");
    details.append(el("summary", "", title));
    details.append(node);
    return details;
  }

  function card(r) {
    const verdict = VERDICTS.includes(r.verdict) ? r.verdict : "unknown";
    const box = el("article", "card " + verdict);
    box.dataset.index = String(r.i);
    box.append(figure(r));
    const body = el("div", "body");
    const head = el("div", "head");
    const inconclusive = r.cal && r.cal.inconclusive && verdict === "unknown";
    head.append(el("span", "badge " + (inconclusive ? "inconclusive" : verdict), inconclusive ? "INCONCLUSIVE" : verdict.toUpperCase()));
    if (r.media === "video") head.append(el("span", "media", "VIDEO"));
    const shown = r.cal && r.cal.p !== null ? r.cal.p : r.p;
    if (shown !== null) {
      const bar = el("span", "bar");
      bar.title = r.cal && r.cal.p !== null ? "calibrated P(fake)" : "P(fake)";
      if (r.cal && r.cal.band) {
        const band = el("b", "band");
        band.style.left = (r.cal.band[0] * 100) + "%";
        band.style.width = ((r.cal.band[1] - r.cal.band[0]) * 100) + "%";
        band.title = "inconclusive band";
        bar.append(band);
      }
      const fill = el("i");
      fill.style.width = (shown * 100) + "%";
      bar.append(fill);
      head.append(bar);
    }
    if (r.cal && r.cal.p !== null) {
      head.append(el("span", "pct", "calibrated P(fake) " + pct(r.cal.p)));
      head.append(el("span", "raw", "(model " + pct(r.p) + ")"));
    } else {
      head.append(el("span", "pct", "P(fake) " + pct(r.p)));
    }
    if (inconclusive) {
      head.append(el("span", "flag inc", r.cal.band ? "too close to call: in the band " + pct(r.cal.band[0]) + "\u2013" + pct(r.cal.band[1]) : "too close to call"));
    }
    if (r.disagreement) head.append(el("span", "flag", "metadata overrules the model"));
    if (r.label) {
      const right = r.label === verdict;
      head.append(el("span", "label " + (right ? "right" : "wrong"),
        "truth: " + r.label + (r.category ? " \u00b7 " + r.category : "") + (right ? " \u2713" : " \u2717")));
    }
    body.append(head);
    body.append(el("div", "path", r.path));
    if (r.error) body.append(el("div", "errortext", r.error));
    if (r.answer) body.append(el("div", "answer", (r.lead_in ? r.lead_in + " " : "") + r.answer));
    [r.video ? section("Video", clipLines(r.video)) : null,
      section("Why", r.reasons),
      r.loc ? section("Where (" + r.loc.method + ")", where(r.loc)) : null,
      section("Provenance", r.provenance),
      folded("Camera EXIF", section("EXIF", r.exif.map((kv) => kv[0] + ": " + kv[1]), "kv")),
      folded("Notes", section("Notes", r.notes))].forEach((node) => { if (node) body.append(node); });
    body.append(el("div", "facts", r.facts));
    box.append(body);
    return box;
  }

  function visible() {
    const q = state.query.toLowerCase();
    let list = records.filter((r) => state.verdicts.has(r.verdict) &&
      (!q || r.path.toLowerCase().includes(q)) && (!state.wrongOnly || (r.label && r.label !== r.verdict)));
    const byP = (sign) => (a, b) => {
      if (a.p === null && b.p === null) return a.i - b.i;
      if (a.p === null) return 1;
      if (b.p === null) return -1;
      return sign * (a.p - b.p) || a.i - b.i;
    };
    if (state.sort === "p-desc") list = list.sort(byP(-1));
    else if (state.sort === "p-asc") list = list.sort(byP(1));
    else if (state.sort === "path") list = list.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.i - b.i));
    return list;
  }

  function render() {
    const list = visible();
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    const main = $("list");
    const cards = list.slice(start, start + PAGE).map(card);
    if (!cards.length) cards.push(el("p", "empty", "No record matches these filters."));
    main.replaceChildren(...cards);
    $("shown").textContent = list.length + " of " + records.length + " shown";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    document.body.dataset.rendered = String(cards.length);
  }

  function go(page) {
    state.page = page;
    render();
    $("list").scrollIntoView({ block: "start" });
  }

  document.querySelectorAll("input[name=verdict]").forEach((box) => {
    box.addEventListener("change", () => {
      if (box.checked) state.verdicts.add(box.value); else state.verdicts.delete(box.value);
      state.page = 0;
      render();
    });
  });
  $("search").addEventListener("input", (event) => { state.query = event.target.value; state.page = 0; render(); });
  $("sort").addEventListener("change", (event) => { state.sort = event.target.value; state.page = 0; render(); });
  $("heatmaps").addEventListener("change", (event) => {
    document.body.classList.toggle("hide-heatmaps", !event.target.checked);
  });
  const wrong = $("wrong");
  if (wrong) wrong.addEventListener("change", (event) => { state.wrongOnly = event.target.checked; state.page = 0; render(); });
  $("prev").addEventListener("click", () => go(state.page - 1));
  $("next").addEventListener("click", () => go(state.page + 1));
  render();
  document.body.dataset.ready = "1";
})();
