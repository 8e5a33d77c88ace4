import { useCallback, useEffect, useRef, type RefObject } from "react";
import type { GridImperativeAPI } from "react-window";
import { anchorRowFor } from "./layout";

/** First visible item index saved for this picker in this tab, or 0. */
export function readSavedIndex(key: string | null): number {
  if (!key) return 0;
  try {
    const n = Number(sessionStorage.getItem(key));
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0; // storage disabled (privacy mode, sandboxed iframe)
  }
}

function save(key: string | null, index: number): void {
  if (!key) return;
  try {
    sessionStorage.setItem(key, String(index));
  } catch {
    // Losing scroll memory is harmless.
  }
}

export interface ScrollAnchor {
  /** Call from onResize before the new width is applied: remembers which item is at the top. */
  captureForResize: (nextWidth: number) => void;
  /** Call from onCellsRendered with the first visible item. */
  reportFirstVisible: (index: number) => void;
}

/**
 * Keeps the top image in view across column changes and across closing/reopening the picker.
 * One mechanism for both: a pending "anchor" item index, scrolled to once the layout (and the
 * total, so the row exists) is known.
 */
export function useScrollAnchor(
  gridRef: RefObject<GridImperativeAPI | null>,
  storageKey: string | null,
  /** Item to bring to the top once the layout is ready (from readSavedIndex). */
  initialIndex: number,
  layout: { width: number; columnCount: number; rowCount: number; ready: boolean },
): ScrollAnchor {
  const firstVisible = useRef(initialIndex);
  const anchor = useRef<number | null>(initialIndex > 0 ? initialIndex : null);

  // Captured in onResize, not in an effect: the Grid's own onCellsRendered effect runs before ours
  // and would already report the top item of the new layout.
  // Height-only resizes keep rows where they are, so only a width change needs an anchor.
  const widthRef = useRef(layout.width);
  widthRef.current = layout.width;
  const captureForResize = useCallback((nextWidth: number) => {
    if (nextWidth !== widthRef.current && anchor.current === null) anchor.current = firstVisible.current;
  }, []);

  const reportFirstVisible = useCallback(
    (index: number) => {
      if (anchor.current !== null) return; // a restore is pending: the transient top must not overwrite it
      firstVisible.current = index;
      save(storageKey, index);
    },
    [storageKey],
  );

  const { width, columnCount, rowCount, ready } = layout;
  useEffect(() => {
    if (anchor.current === null || !ready || columnCount <= 0 || rowCount <= 0) return;
    const grid = gridRef.current;
    if (!grid) return;
    const target = anchor.current;
    anchor.current = null;
    grid.scrollToRow({ index: anchorRowFor(target, columnCount, rowCount), align: "start", behavior: "instant" });
  }, [gridRef, width, columnCount, rowCount, ready]);

  return { captureForResize, reportFirstVisible };
}
