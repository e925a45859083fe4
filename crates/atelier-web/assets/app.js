// atelier review pages: retag with buttons or keys, undo, select many, conflicts.
// Every write sends the session's CSRF token and the label version the page showed.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
  const undoStack = []; // event ids of this page's changes, newest last

  function toast(text, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.className = "show " + (kind || "");
    clearTimeout(box._timer);
    box._timer = setTimeout(() => (box.className = ""), 4000);
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf || "" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (_) { /* empty body */ }
    return { status: response.status, data };
  }

  function cardsOf(image, facet) {
    return document.querySelectorAll(
      `.card[data-image="${image}"][data-facet="${CSS.escape(facet)}"]`);
  }

  // Shows a label change on every card of that image and facet.
  function showChange(image, facet, label, version) {
    for (const card of cardsOf(image, facet)) {
      card.dataset.version = String(version);
      card.dataset.label = label || "";
      const value = card.querySelector(".label-value");
      if (value) value.textContent = label || "(none)";
      for (const button of card.querySelectorAll("button.pick")) {
        button.classList.toggle("current", button.dataset.label === label);
      }
      card.classList.remove("flash");
      void card.offsetWidth; // restart the animation
      card.classList.add("flash", "changed");
    }
  }

  async function retag(cards, label) {
    if (!cards.length) return;
    const edits = cards.map((card) => ({
      image: card.dataset.image,
      facet: card.dataset.facet,
      label: label,
      expected_version: Number(card.dataset.version),
      reason: card.dataset.reason || null,
      run: card.dataset.run ? Number(card.dataset.run) : null,
    }));
    const { status, data } = await post("/api/labels", { edits });
    if (status === 200) {
      let changed = 0;
      for (const change of data.changes) {
        showChange(change.image, change.facet, change.new_label, change.version);
        if (change.event_id != null) { undoStack.push(change.event_id); changed++; }
      }
      toast(changed ? `${changed} label${changed > 1 ? "s" : ""} set to ${label} · u undoes`
        : `already ${label}`, "ok");
    } else if (status === 409 && data.current) {
      resolveConflict(data, label, edits);
    } else {
      toast(data.error || `failed (${status})`, "error");
    }
  }

  // Someone else changed the label first: show theirs, and offer to apply ours over it.
  function resolveConflict(data, label, edits) {
    const current = data.current;
    showChange(current.image, current.facet, current.label, current.version);
    const theirs = current.label || "(none)";
    const mine = window.confirm(
      `Someone else changed ${current.facet} of this image to "${theirs}" meanwhile.\n\n` +
      `OK: set it to "${label}" anyway.  Cancel: keep "${theirs}".`);
    if (mine) {
      const cards = edits.length === 1 ? [...cardsOf(current.image, current.facet)].slice(0, 1) : [];
      if (cards.length) retag(cards, label);
      else toast("nothing was saved; the page shows the current labels, try again", "error");
    } else {
      toast(`kept "${theirs}"`, "ok");
    }
  }

  async function undo(eventId) {
    const id = eventId ?? undoStack.pop();
    if (id == null) { toast("nothing to undo on this page"); return; }
    const { status, data } = await post("/api/labels/undo", { event: id });
    if (status === 200) {
      showChange(data.image, data.facet, data.new_label, data.version);
      toast(`undone: ${data.facet} is ${data.new_label || "(none)"} again`, "ok");
    } else {
      toast(data.error || `undo failed (${status})`, "error");
    }
  }

  // Keyboard: arrows move between cards, digits pick a label, u undoes, x selects.
  function cards() { return [...document.querySelectorAll(".card[data-image]")]; }
  function focusedCard() { return document.activeElement?.closest?.(".card[data-image]"); }
  function columns(list) {
    if (!list.length) return 1;
    const top = list[0].offsetTop;
    return Math.max(1, list.filter((c) => c.offsetTop === top).length);
  }

  function updateSelection() {
    const count = document.querySelectorAll(".card input[type=checkbox]:checked").length;
    const counter = document.querySelector(".toolbar .count");
    if (counter) counter.textContent = `${count} selected`;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if (event.target.closest?.(".box-overlay")) return; // the box editor's handles
    const list = cards();
    if (!list.length) return;
    let card = focusedCard();
    const index = card ? list.indexOf(card) : -1;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(list), ArrowUp: -columns(list) }[event.key];
    if (step !== undefined) {
      const next = list[Math.min(list.length - 1, Math.max(0, index < 0 ? 0 : index + step))];
      next.focus();
      event.preventDefault();
      return;
    }
    if (event.key === "u") { undo(); event.preventDefault(); return; }
    if (!card) return;
    if (event.key === "x") {
      const box = card.querySelector("input[type=checkbox]");
      if (box) { box.checked = !box.checked; updateSelection(); }
      event.preventDefault();
      return;
    }
    if (/^[0-9]$/.test(event.key)) {
      const position = event.key === "0" ? 9 : Number(event.key) - 1;
      const button = card.querySelectorAll("button.pick")[position];
      if (button) { retag([card], button.dataset.label); event.preventDefault(); }
    }
  });

  document.addEventListener("click", (event) => {
    const pick = event.target.closest("button.pick");
    if (pick) { retag([pick.closest(".card")], pick.dataset.label); return; }
    const undoButton = event.target.closest("button.undo");
    if (undoButton) { undo(); return; }
    const undoEvent = event.target.closest("button.undo-event");
    if (undoEvent) { undo(Number(undoEvent.dataset.event)).then(() => setTimeout(() => location.reload(), 600)); return; }
    const batch = event.target.closest("button.batch-apply");
    if (batch) {
      const label = document.querySelector(".toolbar select.batch-label")?.value;
      const selected = [...document.querySelectorAll(".card input[type=checkbox]:checked")]
        .map((box) => box.closest(".card"));
      if (!selected.length) { toast("select images first (click their box or press x)"); return; }
      if (label) retag(selected, label);
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches(".card input[type=checkbox]")) updateSelection();
  });

  // The triplet editor: digits pick the most similar candidate, then the least similar;
  // Enter saves, s skips, Escape clears.
  const triplet = document.querySelector("form.triplet");
  function markTriplet() {
    for (const candidate of document.querySelectorAll(".candidate")) {
      candidate.classList.toggle("similar", !!candidate.querySelector('input[name="similar"]:checked'));
      candidate.classList.toggle("dissimilar", !!candidate.querySelector('input[name="dissimilar"]:checked'));
    }
  }
  if (triplet) {
    triplet.addEventListener("change", markTriplet);
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.tagName === "INPUT" && event.target.type === "text") return;
      const chosen = (name) => triplet.querySelector(`input[name="${name}"]:checked`);
      if (/^[1-9]$/.test(event.key)) {
        const candidate = document.querySelector(`.candidate[data-key="${event.key}"]`);
        if (!candidate) return;
        const name = chosen("similar") ? "dissimilar" : "similar";
        const input = candidate.querySelector(`input[name="${name}"]`);
        if (!input) return;
        if (name === "dissimilar" && chosen("similar")?.value === input.value) {
          toast("pick another dress as the least similar");
        } else {
          input.checked = true;
          markTriplet();
        }
        event.preventDefault();
      } else if (event.key === "Enter") {
        if (chosen("similar") && chosen("dissimilar")) triplet.requestSubmit();
        else toast("pick the most similar and the least similar first");
        event.preventDefault();
      } else if (event.key === "s") {
        const skip = triplet.querySelector("a.skip");
        if (skip) location.href = skip.href;
      } else if (event.key === "Escape") {
        for (const input of triplet.querySelectorAll("input[type=radio]")) input.checked = false;
        markTriplet();
      }
    });
  }

  // Answering a crowd task: digit N presses the N-th label's button.
  const crowdAnswer = document.querySelector("form.crowd-answer");
  if (crowdAnswer) {
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || !/^[1-9]$/.test(event.key)) return;
      const button = crowdAnswer.querySelector(`button[data-key="${event.key}"]`);
      if (button) {
        event.preventDefault();
        crowdAnswer.requestSubmit(button);
      }
    });
  }

  // The box editor: drag a corner handle, or focus one and move it with the arrow keys
  // (Shift: ten times further); the form's four numbers follow, and Enter saves.
  const boxForm = document.querySelector("form.box-editor");
  const overlay = document.querySelector(".photo-frame .box-overlay");
  if (boxForm && overlay) {
    const width = Number(boxForm.dataset.width), height = Number(boxForm.dataset.height);
    const field = (name) => boxForm.querySelector(`input[name="${name}"]`);
    const corners = [["x0", "y0"], ["x1", "y0"], ["x1", "y1"], ["x0", "y1"]];
    const step = Math.max(1, Math.round(Math.max(width, height) / 100));
    function draw() {
      const [x0, y0, x1, y1] = ["x0", "y0", "x1", "y1"].map((n) => Number(field(n).value));
      const rect = overlay.querySelector("rect.current");
      if (rect) {
        rect.setAttribute("x", Math.min(x0, x1)); rect.setAttribute("y", Math.min(y0, y1));
        rect.setAttribute("width", Math.abs(x1 - x0)); rect.setAttribute("height", Math.abs(y1 - y0));
      }
      for (const handle of overlay.querySelectorAll(".handle")) {
        const [cx, cy] = corners[Number(handle.dataset.corner)];
        handle.setAttribute("cx", field(cx).value); handle.setAttribute("cy", field(cy).value);
      }
    }
    // Moves a corner to (x, y) in the photo's pixels, inside the photo.
    function place(corner, x, y) {
      const [cx, cy] = corners[corner];
      field(cx).value = Math.round(Math.min(width, Math.max(0, x)));
      field(cy).value = Math.round(Math.min(height, Math.max(0, y)));
      draw();
    }
    function pixels(event) {
      const frame = overlay.getBoundingClientRect();
      return [(event.clientX - frame.left) * width / frame.width,
        (event.clientY - frame.top) * height / frame.height];
    }
    let dragging = null;
    overlay.addEventListener("pointerdown", (event) => {
      const handle = event.target.closest(".handle");
      if (!handle) return;
      dragging = Number(handle.dataset.corner);
      handle.setPointerCapture(event.pointerId);
      handle.focus();
      event.preventDefault();
    });
    overlay.addEventListener("pointermove", (event) => {
      if (dragging !== null) place(dragging, ...pixels(event));
    });
    overlay.addEventListener("pointerup", () => { dragging = null; });
    overlay.addEventListener("keydown", (event) => {
      const handle = event.target.closest(".handle");
      if (!handle) return;
      const move = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
      if (move) {
        const corner = Number(handle.dataset.corner);
        const [cx, cy] = corners[corner];
        const by = event.shiftKey ? step * 10 : step;
        place(corner, Number(field(cx).value) + move[0] * by, Number(field(cy).value) + move[1] * by);
        event.preventDefault();
      } else if (event.key === "Enter") {
        boxForm.requestSubmit();
        event.preventDefault();
      }
    });
    boxForm.addEventListener("input", draw);
    // A corner dragged past its opposite one: save the box with its corners in order.
    boxForm.addEventListener("submit", () => {
      for (const [a, b] of [["x0", "x1"], ["y0", "y1"]]) {
        const [low, high] = [Number(field(a).value), Number(field(b).value)];
        if (low > high) { field(a).value = high; field(b).value = low; }
      }
    });
  }

  // Pages of running jobs refresh themselves.
  const reload = document.querySelector("[data-reload]");
  if (reload) setTimeout(() => location.reload(), Number(reload.dataset.reload) || 3000);

  // Viewers see the grids without edit controls.
  if (document.querySelector('meta[name="user-role"]')?.content === "viewer") {
    document.body.classList.add("read-only");
  }
})();
