/** Pure keyboard navigation for the grid (WAI-ARIA grid pattern), unit-tested without a DOM. */

export interface NavContext {
  columnCount: number;
  itemCount: number;
  /** Rows per PageUp/PageDown. */
  pageRows: number;
}

export interface NavKey {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
}

/**
 * Index the focus moves to for a key, or null if the key is not a navigation key.
 * Arrows move one cell (Left/Right wrap across rows, like reading order), Home/End go to the
 * start/end of the row and Ctrl+Home/End to the first/last image, PageUp/PageDown move by a screen
 * of rows in the same column. The result is always clamped to an existing item.
 */
export function nextIndex(current: number, ev: NavKey, ctx: NavContext): number | null {
  const { columnCount: cols, itemCount: n } = ctx;
  if (n <= 0 || cols <= 0) return null;
  const last = n - 1;
  const at = Math.min(Math.max(0, current), last);
  const col = at % cols;
  const rowStart = at - col;
  const ctrl = Boolean(ev.ctrlKey || ev.metaKey);
  const clamp = (i: number) => Math.min(last, Math.max(0, i));
  switch (ev.key) {
    case "ArrowRight":
      return clamp(at + 1);
    case "ArrowLeft":
      return clamp(at - 1);
    case "ArrowDown":
      // On the ragged last row there may be nothing below; stay put rather than jump sideways.
      return at + cols <= last ? at + cols : at;
    case "ArrowUp":
      return at - cols >= 0 ? at - cols : at;
    case "Home":
      return ctrl ? 0 : rowStart;
    case "End":
      return ctrl ? last : Math.min(last, rowStart + cols - 1);
    case "PageDown": {
      const step = Math.max(1, ctx.pageRows) * cols;
      if (at + step <= last) return at + step;
      // Same column on the last row if it exists there, else the last item.
      const lastRowStart = last - (last % cols);
      return Math.min(last, lastRowStart + col);
    }
    case "PageUp": {
      const step = Math.max(1, ctx.pageRows) * cols;
      return at - step >= 0 ? at - step : col;
    }
    default:
      return null;
  }
}
