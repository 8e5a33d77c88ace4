import { useCallback, useEffect, useLayoutEffect, useRef, type RefObject } from "react";
import type { GridImperativeAPI } from "react-window";
import { anchorScrollTop, topAnchorFor, type TopAnchor } from "./layout";

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

/**
 * The user's scrolling writes the place to sessionStorage at most this often (and at once when the
 * page is hidden or left, or the picker unmounts): a synchronous setItem on every scroll event cost
 * 80-200 ms of main thread per fast scroll at 6x CPU.
 */
export const SAVE_INTERVAL_MS = 250;

export interface ScrollAnchor {
  /** Call from onResize before the new size is applied: scroll events until the re-anchor are not the user's. */
  beginResize: (size: { width: number; height: number }) => void;
  /** `count` items were inserted before everything shown: keep the same item at the top. */
  shiftBy: (count: number) => void;
  /** Put item `index` at the top (e.g. after the list was reloaded from the start). */
  jumpTo: (index: number) => void;
  /** The item the user is looking at (top-left), in current item indices. */
  getIndex: () => number;
}

/**
 * Keeps the user's place: the item at the top-left stays at the top across column changes, cell-size
 * changes (any width step, fractional sizes included), inserts at the top and closing/reopening.
 *
 * The place is an item index plus how far into its row the view was, and only a scroll the user
 * made changes it. Re-anchoring after a layout change scrolls to where that item now is, but never
 * re-reads the place from the new layout: reading it back would round down to a row start each time,
 * and a drag-resize of many small steps would walk the view upwards row by row.
 */
export function useScrollAnchor(
  gridRef: RefObject<GridImperativeAPI | null>,
  storageKey: string | null,
  /** Item to bring to the top once the layout is ready (from readSavedIndex). */
  initialIndex: number,
  layout: {
    columnCount: number;
    cellSize: number;
    rowCount: number;
    ready: boolean;
    /** The list's items, to follow the item at the place when pages are reloaded (images deleted above). */
    items?: readonly ({ id: number } | undefined)[];
  },
): ScrollAnchor {
  const place = useRef<TopAnchor>({ index: initialIndex, fraction: 0 });
  // Which image is at the place (its id), once loaded: if a reloaded page moves it (images deleted
  // above it while open), the place follows it instead of showing other images at the same index.
  const placeId = useRef<number | null>(null);
  // A re-anchor is owed: restore on open, a resize in progress, or items inserted above.
  const pending = useRef(initialIndex > 0);
  // scrollTop we set ourselves: its scroll event must not be mistaken for the user's.
  const expectedTop = useRef<number | null>(null);
  const appliedLayout = useRef("");
  const latest = useRef(layout);
  latest.current = layout;
  // A write of the user's place is owed (throttled): the timer that will make it.
  const saveTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const keyRef = useRef(storageKey);
  keyRef.current = storageKey;
  const flushSave = useCallback(() => {
    if (saveTimer.current === null) return;
    clearTimeout(saveTimer.current);
    saveTimer.current = null;
    save(keyRef.current, place.current.index);
  }, []);
  const scheduleSave = useCallback(() => {
    if (saveTimer.current !== null || keyRef.current === null) return;
    saveTimer.current = setTimeout(() => {
      saveTimer.current = null;
      save(keyRef.current, place.current.index);
    }, SAVE_INTERVAL_MS);
  }, []);
  useEffect(() => {
    const onHidden = () => {
      if (document.visibilityState === "hidden") flushSave();
    };
    window.addEventListener("pagehide", flushSave);
    document.addEventListener("visibilitychange", onHidden);
    return () => {
      window.removeEventListener("pagehide", flushSave);
      document.removeEventListener("visibilitychange", onHidden);
      flushSave(); // closed: the place is kept for reopening
    };
  }, [flushSave]);

  const onScroll = useCallback(
    (event: Event) => {
      const el = event.currentTarget as HTMLElement;
      if (pending.current) return;
      if (expectedTop.current !== null && Math.abs(el.scrollTop - expectedTop.current) < 1) return;
      expectedTop.current = null;
      const { columnCount, cellSize } = latest.current;
      if (columnCount <= 0 || !(cellSize > 0)) return;
      place.current = topAnchorFor(el.scrollTop, cellSize, columnCount);
      placeId.current = latest.current.items?.[place.current.index]?.id ?? null;
      scheduleSave();
    },
    [scheduleSave],
  );

  // Runs after every commit (cheap): attach to the grid element (it comes and goes with the status
  // panels), then re-anchor when the layout changed or an anchor is owed.
  const attached = useRef<HTMLElement | null>(null);
  useLayoutEffect(() => {
    const el = gridRef.current?.element ?? null;
    if (el !== attached.current) {
      attached.current?.removeEventListener("scroll", onScroll);
      el?.addEventListener("scroll", onScroll, { passive: true });
      attached.current = el;
    }
    const { columnCount, cellSize, rowCount, ready, items } = layout;
    if (items) {
      const here = items[place.current.index]?.id;
      if (placeId.current !== null && here !== undefined && here !== placeId.current) {
        const moved = findNear(items, placeId.current, place.current.index);
        if (moved !== null) {
          place.current = { ...place.current, index: moved };
          pending.current = true;
          save(storageKey, moved);
        }
      }
      placeId.current = items[place.current.index]?.id ?? placeId.current;
    }
    if (!el || !ready || columnCount <= 0 || !(cellSize > 0) || rowCount <= 0) return;
    const key = `${columnCount}:${cellSize}:${el.clientHeight}`;
    if (!pending.current && key === appliedLayout.current) return;
    appliedLayout.current = key;
    pending.current = false;
    el.scrollTop = anchorScrollTop(place.current, cellSize, columnCount, rowCount);
    expectedTop.current = el.scrollTop; // read back: the browser clamps at the end
  });
  useLayoutEffect(
    () => () => {
      attached.current?.removeEventListener("scroll", onScroll);
      attached.current = null; // so a remount (StrictMode's included) attaches again
    },
    [onScroll],
  );

  const lastSize = useRef({ width: -1, height: -1 });
  const beginResize = useCallback((size: { width: number; height: number }) => {
    // Only a real change is followed by a commit that re-anchors; a repeated size must not leave
    // `pending` set (it would swallow the user's scrolls until some later commit).
    if (size.width === lastSize.current.width && size.height === lastSize.current.height) return;
    lastSize.current = size;
    pending.current = true;
  }, []);
  const shiftBy = useCallback(
    (count: number) => {
      if (count <= 0) return;
      place.current = { ...place.current, index: place.current.index + count };
      pending.current = true;
      save(storageKey, place.current.index);
    },
    [storageKey],
  );
  const jumpTo = useCallback(
    (index: number) => {
      place.current = { index: Math.max(0, index), fraction: 0 };
      placeId.current = null;
      pending.current = true;
      save(storageKey, place.current.index);
    },
    [storageKey],
  );
  const getIndex = useCallback(() => place.current.index, []);
  return { beginResize, shiftBy, jumpTo, getIndex };
}

/** How far from the place a moved image is looked for (images deleted above it while open). */
const FOLLOW_WINDOW = 1000;

/** Index of the image with this id nearest to `from` (within FOLLOW_WINDOW), or null. */
function findNear(items: readonly ({ id: number } | undefined)[], id: number, from: number): number | null {
  for (let d = 1; d <= FOLLOW_WINDOW; d++) {
    if (items[from - d]?.id === id) return from - d;
    if (items[from + d]?.id === id) return from + d;
  }
  return null;
}
