// The measuring script, installed before any page script runs (Playwright add_init_script).
// It is the same for the picker and the naive grid: both mark their cells role="gridcell" and
// show each image as an <img> inside its cell; everything else is found from the page itself.
(() => {
  const CELL = '[role="gridcell"]';
  const FIRST = 12;

  const loaded = (img) => !!img && img.complete && img.naturalWidth > 0;

  /** The element that scrolls the grid: the nearest scrollable ancestor of a cell. */
  function scroller() {
    const cell = document.querySelector(CELL);
    for (let el = cell && cell.parentElement; el; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowY;
      if ((overflow === "auto" || overflow === "scroll") && el.scrollHeight > el.clientHeight) return el;
    }
    return document.scrollingElement;
  }

  /** Cells whose centre is inside the scroller's visible box, in reading order. */
  function visibleCells() {
    const el = scroller();
    const view = { top: 0, left: 0, bottom: innerHeight, right: innerWidth };
    const box = el === document.scrollingElement ? view : el.getBoundingClientRect();
    const cells = [];
    for (const cell of document.querySelectorAll(CELL)) {
      const r = cell.getBoundingClientRect();
      const x = (r.left + r.right) / 2;
      const y = (r.top + r.bottom) / 2;
      if (r.width > 0 && x >= box.left && x < box.right && y >= Math.max(box.top, 0) && y < Math.min(box.bottom, innerHeight)) {
        cells.push({ cell, top: r.top, left: r.left });
      }
    }
    cells.sort((a, b) => a.top - b.top || a.left - b.left);
    return cells.map((c) => c.cell);
  }

  function blankCount() {
    const cells = visibleCells();
    const blank = cells.filter((cell) => !loaded(cell.querySelector("img"))).length;
    return { visible: cells.length, blank };
  }

  const state = { first12: null, firstScreen: null, maxImgs: 0, maxNodes: 0, watching: true };
  const allElements = document.getElementsByTagName("*"); // live: reading its length is cheap

  // From document start until both moments are seen (or stop() is called): once per frame,
  // is the first screen there yet? performance.now() is ms since navigation start.
  function watch() {
    state.maxImgs = Math.max(state.maxImgs, document.images.length);
    state.maxNodes = Math.max(state.maxNodes, allElements.length);
    if (state.watching && (state.first12 === null || state.firstScreen === null)) {
      const cells = visibleCells();
      if (cells.length >= FIRST) {
        const now = performance.now();
        const ok = cells.map((cell) => loaded(cell.querySelector("img")));
        if (state.first12 === null && ok.slice(0, FIRST).every(Boolean)) state.first12 = now;
        if (state.firstScreen === null && ok.every(Boolean)) state.firstScreen = now;
      }
    }
    requestAnimationFrame(watch);
  }
  requestAnimationFrame(watch);

  function nextFrame() {
    return new Promise((resolve) => requestAnimationFrame(resolve));
  }

  /**
   * Scroll by pxPerFrame on every animation frame until `distance` px are covered or the end is
   * reached (or maxMs passed); returns the frame deltas (ms between rAF callbacks).
   */
  async function scroll(direction, pxPerFrame, distance, maxMs) {
    const el = scroller();
    const frames = [];
    const start = performance.now();
    let last = await nextFrame();
    let moved = 0;
    for (;;) {
      const end = el.scrollHeight - el.clientHeight;
      const before = el.scrollTop;
      const step = Math.min(pxPerFrame, distance - moved);
      el.scrollTop = direction > 0 ? Math.min(end, before + step) : Math.max(0, before - step);
      moved += Math.abs(el.scrollTop - before);
      const atEnd = direction > 0 ? el.scrollTop >= end - 1 : el.scrollTop <= 0;
      const t = await nextFrame();
      frames.push(t - last);
      last = t;
      state.maxImgs = Math.max(state.maxImgs, document.images.length);
      if (atEnd || moved >= distance || t - start > maxMs) {
        return { frames, atEnd, timedOut: !atEnd && moved < distance, moved, scrollTop: el.scrollTop, scrollEnd: end };
      }
    }
  }

  /** Scroll `distance` px, stop, wait `settleMs`, then count visible cells without a loaded image. */
  async function flick(direction, pxPerFrame, distance, settleMs, maxMs) {
    const pass = await scroll(direction, pxPerFrame, distance, maxMs);
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    return { ...blankCount(), atEnd: pass.atEnd, scrollTop: pass.scrollTop, frames: pass.frames.length };
  }

  window.__bench = {
    state,
    stop: () => { state.watching = false; },
    blankCount,
    scroll,
    flick,
    scrollToTop: () => { scroller().scrollTop = 0; },
    geometry: () => {
      const el = scroller();
      return { scrollHeight: el.scrollHeight, clientHeight: el.clientHeight, cells: document.querySelectorAll(CELL).length };
    },
  };
})();
