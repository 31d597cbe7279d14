// The page at GET /: sends the text to the public API and highlights what comes back.
// No framework and nothing from another host. User text and model output only ever reach the
// DOM through textContent, title and data-* attributes (never innerHTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // What each task choice asks for: [route, panel title]. User tasks (from /info) are added as
  // "task:<name>" choices that call POST /tasks/<name>.
  const TASKS = {
    concepts: [["tag", "Concepts"]],
    acronyms: [["acronyms", "Acronyms"]],
    both: [["tag", "Concepts"], ["acronyms", "Acronyms"]],
  };
  const DEFAULT_LABEL = { concept: "concept", short: "short form", long: "long form" };
  const spanLabels = new Map(); // user task -> its span labels, in /info's order (one colour each)
  const PALETTE_SIZE = 6; // page.css: mark.span.c0 .. c5

  function routesOf(choice) {
    if (TASKS[choice]) return TASKS[choice];
    const task = choice.slice("task:".length);
    return [["tasks/" + task, task]];
  }

  // The API counts offsets in code points (Python string indices); JavaScript strings count
  // UTF-16 code units, where a character outside the BMP (an emoji, U+1D538) takes two.
  // utf16At[i] is the UTF-16 index of code point i; utf16At[number of code points] = text.length.
  function utf16Index(text) {
    const utf16At = [0];
    let units = 0;
    for (const ch of text) { // iterates code points
      units += ch.length;
      utf16At.push(units);
    }
    return utf16At;
  }

  function label(span, kind) {
    return typeof span.label === "string" && span.label ? span.label : DEFAULT_LABEL[kind];
  }

  // One entry per highlighted span: {id, kind, label, span, partners: [ids]}.
  function annotationsOf(route, answer) {
    if (route.startsWith("tasks/")) { // any task's labelled spans, no pairing
      return answer.spans.map((span, i) => ({ id: "t" + i, kind: "span", label: span.label, span, partners: [] }));
    }
    if (route === "tag") {
      return answer.concepts.map((span, i) => ({
        id: "c" + i, kind: "concept", label: label(span, "concept"), span, partners: [],
      }));
    }
    const out = [];
    const longs = new Map(); // "start:end" -> annotation; uses of one acronym share its long form
    const longForm = (span) => {
      const key = span.start + ":" + span.end;
      if (!longs.has(key)) {
        const ann = { id: "l" + longs.size, kind: "long", label: label(span, "long"), span, partners: [] };
        longs.set(key, ann);
        out.push(ann);
      }
      return longs.get(key);
    };
    answer.acronyms.forEach((span, i) => {
      const ann = { id: "s" + i, kind: "short", label: label(span, "short"), span, partners: [] };
      out.push(ann);
      if (span.long_form) {
        const long = longForm(span.long_form);
        ann.partners.push(long.id);
        long.partners.push(ann.id);
      }
    });
    answer.long_forms.forEach(longForm);
    return out;
  }

  function describe(ann, byId) {
    const parts = [ann.label + " \u201c" + ann.span.text + "\u201d", "score " + ann.span.score.toFixed(4)];
    if (ann.kind === "short") {
      parts.push(ann.partners.length
        ? "long form: \u201c" + byId.get(ann.partners[0]).span.text + "\u201d"
        : "no long form in this text");
    } else if (ann.kind === "long") {
      const shorts = [...new Set(ann.partners.map((id) => byId.get(id).span.text))];
      parts.push(shorts.length ? "short form: " + shorts.join(", ") : "defines no short form here");
    }
    return parts.join(" \u00b7 ");
  }

  // The text with one <mark> per annotation. Spans of one task never overlap (one tag per token);
  // should one overlap an earlier one all the same, it is listed under the text instead.
  function renderText(text, anns) {
    const byId = new Map(anns.map((a) => [a.id, a]));
    const utf16At = utf16Index(text);
    const at = (cp) => utf16At[Math.max(0, Math.min(cp, utf16At.length - 1))];
    const box = document.createElement("div");
    box.className = "text";
    const skipped = [];
    let pos = 0;
    const sorted = [...anns].sort((a, b) => a.span.start - b.span.start || b.span.end - a.span.end);
    for (const ann of sorted) {
      const from = at(ann.span.start);
      const to = at(ann.span.end);
      if (from < pos || to <= from) {
        skipped.push(ann);
        continue;
      }
      box.append(document.createTextNode(text.slice(pos, from)));
      const mark = document.createElement("mark");
      mark.textContent = text.slice(from, to);
      mark.className = ann.kind;
      if (ann.kind === "span") mark.classList.add(colourOf(ann));
      mark.tabIndex = 0;
      mark.title = describe(ann, byId);
      mark.dataset.ann = ann.id;
      mark.dataset.kind = ann.kind;
      mark.dataset.label = ann.label;
      mark.dataset.partners = ann.partners.join(" ");
      box.append(mark);
      pos = to;
    }
    box.append(document.createTextNode(text.slice(pos)));
    return { box, skipped, byId };
  }

  // A user task's labels take the palette's colours in /info's order; an unlisted one the last.
  function colourOf(ann) {
    const task = ann.task || "";
    const labels = spanLabels.get(task) || [];
    const i = labels.indexOf(ann.label);
    return "c" + (i < 0 ? PALETTE_SIZE - 1 : i % PALETTE_SIZE);
  }

  // Hovering, focusing or clicking a short form lights up its long form, and the other way round.
  function link(box) {
    const marksOf = (mark) => [mark, ...(mark.dataset.partners || "").split(" ").filter(Boolean)
      .map((id) => box.querySelector('mark[data-ann="' + id + '"]')).filter(Boolean)];
    const light = (mark, on) => marksOf(mark).forEach((m) => m.classList.toggle("linked", on));
    const target = (event) => (event.target instanceof Element ? event.target.closest("mark") : null);
    box.addEventListener("mouseover", (e) => { const m = target(e); if (m) light(m, true); });
    box.addEventListener("mouseout", (e) => { const m = target(e); if (m && !m.classList.contains("pinned")) light(m, false); });
    box.addEventListener("focusin", (e) => { const m = target(e); if (m) light(m, true); });
    box.addEventListener("focusout", (e) => { const m = target(e); if (m && !m.classList.contains("pinned")) light(m, false); });
    box.addEventListener("click", (e) => {
      const m = target(e);
      if (!m) return;
      const pinned = !m.classList.contains("pinned");
      box.querySelectorAll("mark.pinned").forEach((p) => { p.classList.remove("pinned"); light(p, false); });
      m.classList.toggle("pinned", pinned);
      light(m, pinned);
    });
  }

  function panel(route, title, text, answer) {
    const section = document.createElement("section");
    section.className = "panel";
    section.dataset.task = route;
    const heading = document.createElement("h2");
    section.append(heading);
    if (!answer.ok) {
      heading.textContent = title;
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = answer.error;
      section.append(p);
      return section;
    }
    const anns = annotationsOf(route, answer.body);
    const task = route.startsWith("tasks/") ? route.slice("tasks/".length) : "";
    anns.forEach((a) => { a.task = task; });
    const counts = {};
    anns.forEach((a) => {
      const name = a.kind === "span" ? a.label : DEFAULT_LABEL[a.kind];
      counts[name] = (counts[name] || 0) + 1;
    });
    const summary = Object.entries(counts).map(([k, n]) => n + " " + k + (n === 1 ? "" : "s"));
    const model = answer.body.model ? " \u2014 " + answer.body.model.task + " " + answer.body.model.version : "";
    heading.textContent = title + ": " + (summary.join(", ") || "nothing found") + model;
    const { box, skipped, byId } = renderText(text, anns);
    link(box);
    section.append(box);
    if (skipped.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "Overlapping, not highlighted: " + skipped.map((a) => describe(a, byId)).join("; ");
      section.append(p);
    }
    return section;
  }

  async function call(route, text, minScore, key) {
    const headers = { "Content-Type": "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    let response;
    try {
      response = await fetch(route, {
        method: "POST", headers, body: JSON.stringify({ text, min_score: minScore }),
      });
    } catch (err) {
      return { ok: false, status: 0, body: null, error: "no answer from the service: " + err };
    }
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (response.ok && body) return { ok: true, status: response.status, body };
    const detail = body && body.error ? body.error.type + ": " + body.error.message : response.statusText;
    return { ok: false, status: response.status, body, error: response.status + " " + detail };
  }

  async function submit(event) {
    event.preventDefault();
    const text = $("text").value;
    const routes = routesOf($("task").value);
    const minScore = Number($("min-score").value) || 0;
    const key = $("api-key").value.trim();
    document.body.dataset.state = "busy";
    $("submit").disabled = true;
    $("status").textContent = "Working\u2026";
    const started = performance.now();
    const answers = await Promise.all(routes.map(([route]) => call(route, text, minScore, key)));
    const ms = Math.round(performance.now() - started);
    const results = $("results");
    results.replaceChildren(...routes.map(([route, title], i) => panel(route, title, text, answers[i])));
    const raw = {};
    routes.forEach(([route], i) => { raw["POST /" + route] = answers[i].body; });
    $("raw").textContent = JSON.stringify(raw, null, 2);
    $("raw-section").hidden = false;
    const failed = answers.filter((a) => !a.ok);
    $("status").textContent = failed.length
      ? failed.map((a) => a.error).join("; ")
      : "Answered in " + ms + " ms. Hover or click a highlight for its score and partner.";
    $("status").className = failed.length ? "error" : "";
    $("submit").disabled = false;
    document.body.dataset.state = failed.length ? "error" : "done";
  }

  // What the service says about itself: model versions, and whether it wants a key.
  async function info() {
    try {
      const response = await fetch("info");
      if (response.status === 401) {
        $("api-key").required = true;
        $("models").textContent = "this service requires an API key";
        return;
      }
      if (!response.ok) return;
      const body = await response.json();
      const versions = Object.entries(body.models || {})
        .map(([task, m]) => task + " " + (m.version || m.status)).join(" \u00b7 ");
      $("models").textContent = versions;
      // Every user task becomes a choice, with its span labels.
      const select = $("task");
      Object.entries(body.models || {}).filter(([, m]) => m.builtin === false).forEach(([task, m]) => {
        spanLabels.set(task, m.span_labels || []);
        const option = document.createElement("option");
        option.value = "task:" + task;
        option.textContent = task + (m.span_labels ? " (" + m.span_labels.join(", ") + ")" : " (" + m.status + ")");
        select.append(option);
      });
      if (body.auth && body.auth.api_key_required) {
        $("api-key").required = true;
        $("api-key").placeholder = "required by this service";
      }
    } catch (err) {
      // The page still works without it.
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("form").addEventListener("submit", submit);
    $("text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("form").requestSubmit();
    });
    info();
  });
})();
