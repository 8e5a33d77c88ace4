import { useCallback, useEffect, useImperativeHandle, useLayoutEffect, useMemo, useRef, useState, type Ref } from "react";
import { Grid, useGridRef } from "react-window";
import type { LibraryFilters } from "./api";
import { PickerCell, type CellData } from "./Cell";
import { DEFAULT_STRINGS, type PickerStrings } from "./labels";
import { itemRangeForRows, rowCountFor, rowOf } from "./layout";
import type { FetchPage } from "./pageLoader";
import { PickerState, useUnavailableCount } from "./pickerState";
import {
  nextSelection,
  selectAllLoaded,
  selectedImages,
  selectionFromUrls,
  type Selection,
  type SelectMode,
} from "./selection";
import { FailedPagesBar, NewImagesNotice, StatusPanel } from "./StatusPanel";
import type { LibraryImage } from "./types";
import { useColumnLayout } from "./useColumnLayout";
import { useGridKeyboard, type ActivateKey } from "./useGridKeyboard";
import { usePagedLibrary, type FetchNewer } from "./usePagedLibrary";
import { readSavedIndex, useScrollAnchor } from "./useScrollAnchor";
import { useScrollSeek } from "./useScrollSeek";
import "./picker.css";

/** What a host can do through `ref`. */
export interface ImagePickerHandle {
  /** Reload the library from the top (new images included), keeping the selection. */
  refresh: () => void;
  /** Scroll an image into view by id and make it the active cell; false if it has not been loaded. */
  scrollToImage: (id: number) => boolean;
}

export interface ImagePickerProps {
  /** Origin (and optional path prefix) of the library API; "" = same origin as the page. */
  apiBase?: string;
  /** Extra request headers for the built-in fetch (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Only this pipeline and/or step (sent to the API as `pipeline_id` / `step`). Changing it reloads. */
  filters?: LibraryFilters;
  /** Replaces the built-in page fetch (the `until` bound must be honoured for a stable list). */
  fetchPage?: FetchPage<LibraryImage>;
  /** Replaces the built-in `newer_than` poll. */
  fetchNewer?: FetchNewer;
  /** Images per API page (the API caps it at 200). */
  pageSize?: number;
  /** Controlled selection (full URLs). With it, the picker only reports changes through the callbacks. */
  selected?: readonly string[];
  /** Initial selection when uncontrolled. */
  defaultSelected?: readonly string[];
  /** Called at once with the full image URL when an image is chosen (in multi-select: added). */
  onSelect?: (url: string, image: LibraryImage) => void;
  /** The whole selection after each change, in selection order (images not loaded yet are left out). */
  onSelectionChange?: (urls: string[], images: LibraryImage[]) => void;
  /** Double-click, or Enter on a selected cell: the user is done choosing. */
  onConfirm?: (urls: string[], images: LibraryImage[]) => void;
  /** Allow several images: clicking toggles, Shift extends a range, Ctrl/Cmd+A selects all loaded. */
  multiple?: boolean;
  /** Smallest cell edge in px; the column count follows the width (at least 2 columns). */
  minCellSize?: number;
  /** Most columns on a wide screen (keeps the number of mounted images bounded). */
  maxColumns?: number;
  /** sessionStorage key for the scroll position; null disables restoring it. */
  scrollKey?: string | null;
  /** "auto" follows prefers-color-scheme. Colours are CSS custom properties (`--tp-*`) either way. */
  theme?: "light" | "dark" | "auto";
  /** Words shown and announced, for translation (missing keys: English). Memoize it. */
  strings?: Partial<PickerStrings>;
  className?: string;
  "aria-label"?: string;
  ref?: Ref<ImagePickerHandle>;
}

const MAX_PAGE_SIZE = 200;
/** Rows of metadata fetched beyond the rendered ones, so pages arrive before the user does. */
const PREFETCH_ROWS = 6;
/** Rows of images mounted beyond the viewport; small, to keep the DOM (and downloads) bounded. */
const OVERSCAN_ROWS = 1;

const GRID_STYLE = { height: "100%", width: "100%", overflowX: "hidden" } as const;
const GRID_SELECTOR = ":scope > [data-picker-grid]";

/** The content box a ResizeObserver would report for an empty element without border or padding. */
function measuredSize(el: Element): { width: number; height: number } {
  const box = el.getBoundingClientRect();
  return { width: box.width, height: box.height };
}

function sameSelection(a: Selection, b: Selection): boolean {
  if (a.size !== b.size) return false;
  const bs = [...b];
  let i = 0;
  for (const [url, image] of a) {
    const [burl, bimage] = bs[i++]!;
    if (url !== burl || image !== bimage) return false;
  }
  return true;
}

/**
 * Virtualized, paged image library picker. Give it a parent with a height; it fills it.
 */
export function ImagePicker({
  apiBase = "",
  headers,
  filters,
  fetchPage,
  fetchNewer,
  pageSize = 50,
  selected: selectedProp,
  defaultSelected,
  onSelect,
  onSelectionChange,
  onConfirm,
  multiple = false,
  minCellSize = 160,
  maxColumns = 10,
  scrollKey,
  theme = "light",
  strings: stringsProp,
  className,
  "aria-label": ariaLabel,
  ref,
}: ImagePickerProps) {
  const limit = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.floor(pageSize)));
  const storageKey = scrollKey === undefined ? `thumbs-picker:scroll:${apiBase}` : scrollKey;
  const [initialIndex] = useState(() => readSavedIndex(storageKey));
  const strings = useMemo(() => ({ ...DEFAULT_STRINGS, ...stringsProp }), [stringsProp]);

  const gridRef = useGridRef(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const columnOpts = useMemo(() => ({ minCellSize, minColumns: 2, maxColumns }), [minCellSize, maxColumns]);
  const { columnCount, cellSize, pageRows, setSize } = useColumnLayout(columnOpts);
  const [state] = useState(() => {
    const s = new PickerState(initialIndex);
    s.setSelected(selectionFromUrls(selectedProp ?? defaultSelected ?? [], new Map(), []));
    return s;
  });
  const library = usePagedLibrary(
    { apiBase, pageSize: limit, request: { headers, filters }, fetchPage, fetchNewer, onRecover: () => state.recover() },
    initialIndex,
  );
  const { snapshot, ensureRange, retry, reset } = library;
  const { items, total, pages, prepended } = snapshot;

  // Before the first page answers, one page of skeletons.
  const itemCount = total ?? limit;
  const rowCount = rowCountFor(itemCount, columnCount);
  const anchor = useScrollAnchor(gridRef, storageKey, initialIndex, {
    columnCount,
    cellSize,
    rowCount,
    ready: total !== null,
    items,
  });
  // A fast scroll shows placeholders (scrollSeek.ts); the mode changes twice per fast scroll.
  const seekMode = useScrollSeek(gridRef);
  const getActive = useCallback(() => state.getActive(), [state]);
  const setActive = useCallback((index: number) => state.setActive(index), [state]);

  // The selection follows a controlled `selected`, and learns the images of selected URLs as pages load.
  const controlled = selectedProp !== undefined;
  useLayoutEffect(() => {
    const cur = state.getSelected();
    const urls = controlled ? selectedProp : [...cur.keys()];
    if (!controlled && ![...cur.values()].includes(null)) return;
    const next = selectionFromUrls(urls, cur, items);
    if (!sameSelection(cur, next)) state.setSelected(next);
  }, [controlled, selectedProp, items, state]);

  // Handlers read the latest values through a ref so that cellProps keep one stable callback.
  const latest = useRef({ items, pages, prepended, multiple, onSelect, onSelectionChange, onConfirm, limit, controlled });
  latest.current = { items, pages, prepended, multiple, onSelect, onSelectionChange, onConfirm, limit, controlled };
  // Where a Shift-range starts: the last image chosen without Shift.
  const rangeAnchor = useRef<number | null>(null);

  /** Apply a choice; returns the resulting selection (already reported to the host). */
  const choose = useCallback(
    (index: number, mode: SelectMode): Selection => {
      const cur = latest.current;
      state.setActive(index);
      const image = cur.items[index];
      if (!image) {
        const page = Math.floor((index - cur.prepended) / cur.limit);
        if (cur.pages.get(page)?.state === "failed") retry(page);
        return state.getSelected();
      }
      if (mode !== "range" || rangeAnchor.current === null) rangeAnchor.current = index;
      const next = nextSelection(state.getSelected(), cur.items, index, rangeAnchor.current, mode, cur.multiple);
      if (!cur.controlled) state.setSelected(next);
      if (next.has(image.url)) cur.onSelect?.(image.url, image);
      cur.onSelectionChange?.([...next.keys()], selectedImages(next));
      return next;
    },
    [retry, state],
  );
  const confirm = useCallback((selection: Selection) => {
    if (selection.size > 0) latest.current.onConfirm?.([...selection.keys()], selectedImages(selection));
  }, []);

  const onCellClick = useCallback(
    (index: number, mods: { shift: boolean; toggle: boolean }) => {
      choose(index, mods.shift && latest.current.multiple ? "range" : mods.toggle ? "toggle" : "replace");
    },
    [choose],
  );
  const onCellConfirm = useCallback(
    (index: number) => {
      const image = latest.current.items[index];
      if (!image) return;
      // A double-click is two clicks first: in multi-select they toggled it off and on again.
      const selection = state.getSelected().has(image.url) ? state.getSelected() : choose(index, "toggle");
      confirm(selection);
    },
    [choose, confirm, state],
  );
  const onActivate = useCallback(
    (index: number, how: ActivateKey) => {
      const image = latest.current.items[index];
      if (how.shift && latest.current.multiple) choose(index, "range");
      else if (how.key === "Enter" && image && state.getSelected().has(image.url)) confirm(state.getSelected());
      else if (how.key === " " && !latest.current.multiple && image && state.getSelected().has(image.url)) return;
      else choose(index, "toggle");
    },
    [choose, confirm, state],
  );
  const onExtend = useCallback(
    (from: number, to: number) => {
      if (!latest.current.multiple) return;
      if (rangeAnchor.current === null) rangeAnchor.current = from;
      choose(to, "range");
    },
    [choose],
  );
  const onSelectAll = useCallback(() => {
    const cur = latest.current;
    if (!cur.multiple) return;
    const next = selectAllLoaded(state.getSelected(), cur.items);
    if (!cur.controlled) state.setSelected(next);
    cur.onSelectionChange?.([...next.keys()], selectedImages(next));
  }, [state]);

  const onKeyDown = useGridKeyboard({
    gridRef,
    rootRef,
    getActive,
    setActive,
    columnCount,
    itemCount: total ?? 0,
    pageRows,
    onActivate,
    onExtend,
    onSelectAll,
  });

  const { beginResize, shiftBy, jumpTo, getIndex } = anchor;
  // Reopened at a saved place: the grid's first commit renders the top of the library before the
  // anchor scrolls to the place. Until the grid has rendered the place, ranges that miss it load no
  // pages and cells far above it no thumbnails (they would be downloads for rows never shown).
  const [restoreTarget, setRestoreTarget] = useState<number | null>(initialIndex > 0 ? initialIndex : null);
  const restoring = useRef(restoreTarget);
  const onCellsRendered = useCallback(
    (
      visible: { rowStartIndex: number; rowStopIndex: number },
      all: { rowStartIndex: number; rowStopIndex: number },
    ) => {
      if (columnCount === 0) return;
      const first = visible.rowStartIndex * columnCount;
      const lastVisible = (visible.rowStopIndex + 1) * columnCount - 1;
      const target = restoring.current;
      if (target !== null && total !== null) {
        const place = Math.min(target, itemCount - 1);
        // Not there yet (the first commit, at the top), and the user has not gone elsewhere meanwhile.
        if (getIndex() === target && (place < first || place > lastVisible)) return;
        restoring.current = null;
        setRestoreTarget(null);
      }
      // Keep the roving tab stop on screen while focus is elsewhere, so Tab lands on a visible cell.
      const root = rootRef.current;
      const active = state.getActive();
      if (root && !root.contains(document.activeElement) && (active < first || active > lastVisible)) {
        state.setActive(first);
      }
      const range = itemRangeForRows(
        Math.max(0, all.rowStartIndex - PREFETCH_ROWS),
        all.rowStopIndex + PREFETCH_ROWS,
        columnCount,
        itemCount,
      );
      if (range) ensureRange(range[0], range[1]);
    },
    [columnCount, itemCount, total, ensureRange, state, getIndex],
  );

  const onResize = useCallback(
    (size: { width: number; height: number }) => {
      beginResize(size);
      setSize(size);
    },
    [beginResize, setSize],
  );

  // The grid's size is ours to watch (not Grid's onResize: with a default size, react-window reports
  // it on mount as {height, width} = {defaultHeight, defaultHeight}, i.e. wrong columns for a frame).
  // Before the Grid first mounts, a placeholder in its place is measured in the layout phase; the
  // Grid then starts at that size (defaultWidth/Height) and renders the first screen's cells in its
  // first commit, instead of an empty commit, a ResizeObserver callback and a second render a frame
  // later. The placeholder is replaced before the browser paints; later sizes come from the observer.
  const [startSize, setStartSize] = useState<{ width: number; height: number } | null>(null);
  const watched = useRef<{ el: Element | null; observer: ResizeObserver | null }>({ el: null, observer: null });
  useLayoutEffect(() => {
    const el = rootRef.current?.querySelector(GRID_SELECTOR) ?? null;
    if (el === watched.current.el) return;
    watched.current.observer?.disconnect();
    watched.current = { el, observer: null };
    if (!el) return;
    if (startSize === null) {
      const size = measuredSize(el);
      if (size.width > 0 && size.height > 0) onResize(size);
      setStartSize(size);
      return;
    }
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver((entries) => {
      for (const entry of entries) {
        if (entry.target === el) onResize({ width: entry.contentRect.width, height: entry.contentRect.height });
      }
    });
    observer.observe(el);
    watched.current.observer = observer;
  });
  // The first commit renders only what is on screen; the overscan row follows once that has painted.
  const [painted, setPainted] = useState(false);
  useEffect(() => {
    if (startSize === null || painted) return;
    // From an animation frame React renders in a task of its own, after the browser has painted.
    const frame = requestAnimationFrame(() => setPainted(true));
    return () => cancelAnimationFrame(frame);
  }, [startSize, painted]);
  useLayoutEffect(
    () => () => {
      watched.current.observer?.disconnect();
      watched.current = { el: null, observer: null }; // so a remount (StrictMode's included) watches again
    },
    [],
  );

  // New images go in at the top; the user's place (and the keyboard's active cell) moves down with them.
  const { showNewer, newerCount, newerCapped } = library;
  const onShowNewer = useCallback(() => {
    // The button goes away with the notice: focus would drop to <body>. Keep it in the grid (parked,
    // with a ring) so the active cell takes it below and the arrow keys go on working.
    const root = rootRef.current;
    if (root && document.activeElement instanceof HTMLElement && root.contains(document.activeElement)) {
      root.querySelector<HTMLElement>(GRID_SELECTOR)?.focus({ preventScroll: true });
    }
    // At the top of the list the user asked to see them: the view stays at the top, where they are.
    // Deeper in, the place is kept (the image at the top-left stays in the top row).
    const atTop = getIndex() === 0 && (gridRef.current?.element?.scrollTop ?? 0) < 1;
    const added = showNewer();
    rangeAnchor.current = null;
    if (added === null) {
      jumpTo(0);
      state.setActive(0);
    } else if (added > 0) {
      if (atTop) jumpTo(0);
      else shiftBy(added);
      state.setActive(state.getActive() + added);
    }
  }, [showNewer, shiftBy, jumpTo, getIndex, gridRef, state]);

  const refresh = useCallback(() => {
    reset();
    rangeAnchor.current = null;
    jumpTo(0);
    state.setActive(0);
  }, [reset, jumpTo, state]);
  useImperativeHandle(
    ref,
    () => ({
      refresh,
      scrollToImage: (id: number) => {
        const index = latest.current.items.findIndex((img) => img?.id === id);
        const grid = gridRef.current;
        if (index < 0 || !grid || columnCount <= 0) return false;
        state.setActive(index);
        grid.scrollToRow({ index: rowOf(index, columnCount), align: "smart", behavior: "instant" });
        return true;
      },
    }),
    [refresh, gridRef, columnCount, state],
  );

  // The first screen (from where the picker opened) loads eagerly and with high priority.
  const eagerStart = Math.floor(initialIndex / Math.max(1, columnCount)) * columnCount;
  const eagerStop = eagerStart + (pageRows + 1) * columnCount;

  const cellProps: CellData = useMemo(
    () => ({
      items,
      itemCount,
      columnCount,
      cellSize,
      pages,
      pageSize: limit,
      prepended,
      state,
      eagerStart,
      eagerStop,
      // More than a row above the place being restored (see restoreTarget).
      holdBefore: restoreTarget === null ? 0 : (rowOf(restoreTarget, columnCount) - 1) * columnCount,
      seeking: seekMode === "seeking",
      deferThumbs: seekMode !== "settled",
      onCellClick,
      onCellConfirm,
      strings,
    }),
    [items, itemCount, columnCount, cellSize, pages, limit, prepended, state, eagerStart, eagerStop, restoreTarget, seekMode, onCellClick, onCellConfirm, strings],
  );

  const firstPage = pages.get(0);
  const failed = [...pages.values()].filter((s) => s.state === "failed");
  const failedOffline = failed.length > 0 && failed.every((s) => s.state === "failed" && s.offline);
  // Tiles on screen that say "Preview unavailable": the bar offers Retry for them too.
  const unavailablePreviews = useUnavailableCount(state);
  let overlay = null;
  if (total === null && firstPage?.state === "failed") {
    overlay = (
      <StatusPanel
        kind="error"
        title={firstPage.offline ? strings.offlineTitle : strings.serverTitle}
        detail={firstPage.offline ? strings.offlineDetail : strings.serverDetail(firstPage.error)}
        actionLabel={strings.tryAgain}
        onAction={() => retry()}
      />
    );
  } else if (total === 0) {
    overlay = (
      <StatusPanel
        kind="empty"
        title={strings.emptyTitle}
        detail={strings.emptyDetail}
        actionLabel={strings.refresh}
        onAction={reset}
      />
    );
  }

  return (
    <div
      ref={rootRef}
      className={className ? `tp-picker ${className}` : "tp-picker"}
      data-picker-root=""
      data-theme={theme}
      onKeyDown={onKeyDown}
    >
      {overlay === null && total !== null && (
        <NewImagesNotice count={newerCount} capped={newerCapped} onShow={onShowNewer} strings={strings} />
      )}
      {overlay ??
        (startSize === null ? (
          <div className="tp-grid" data-picker-grid="" aria-hidden="true" style={GRID_STYLE} />
        ) : (
          <Grid
            className="tp-grid"
            gridRef={gridRef}
            cellComponent={PickerCell}
            cellProps={cellProps}
            columnCount={columnCount}
            columnWidth={cellSize}
            rowCount={rowCount}
            rowHeight={cellSize}
            overscanCount={painted ? OVERSCAN_ROWS : 0}
            onCellsRendered={onCellsRendered}
            data-picker-grid=""
            aria-label={ariaLabel ?? strings.gridLabel}
            aria-multiselectable={multiple || undefined}
            aria-busy={total === null || undefined}
            // Focus is parked here when the focused cell scrolls away (it shows a ring); arrows bring it back.
            tabIndex={-1}
            defaultWidth={startSize.width}
            defaultHeight={startSize.height}
            style={GRID_STYLE}
          />
        ))}
      {overlay === null && (failed.length > 0 || unavailablePreviews > 0) && (
        <FailedPagesBar
          count={failed.length}
          previews={unavailablePreviews}
          offline={failedOffline}
          onRetry={() => retry()}
          strings={strings}
        />
      )}
    </div>
  );
}
