import { useCallback, useMemo, useRef, useState } from "react";
import { Grid, useGridRef } from "react-window";
import { PickerCell, type CellData } from "./Cell";
import { itemRangeForRows, rowCountFor } from "./layout";
import { PickerState } from "./pickerState";
import { FailedPagesBar, NewImagesNotice, StatusPanel } from "./StatusPanel";
import type { LibraryImage } from "./types";
import { useColumnLayout } from "./useColumnLayout";
import { useGridKeyboard } from "./useGridKeyboard";
import { usePagedLibrary } from "./usePagedLibrary";
import { readSavedIndex, useScrollAnchor } from "./useScrollAnchor";
import "./picker.css";

export interface ImagePickerProps {
  /** Origin (and optional path prefix) of the library API; "" = same origin as the page. */
  apiBase?: string;
  /** Images per API page (the API caps it at 200). */
  pageSize?: number;
  /** Called at once with the full image URL when an image is chosen (in multi-select: added). */
  onSelect?: (url: string, image: LibraryImage) => void;
  /** The whole selection after each change, in selection order. */
  onSelectionChange?: (urls: string[], images: LibraryImage[]) => void;
  /** Allow several images; clicking toggles. Off by default. */
  multiple?: boolean;
  /** Smallest cell edge in px; the column count follows the width (at least 2 columns). */
  minCellSize?: number;
  /** Most columns on a wide screen (keeps the number of mounted images bounded). */
  maxColumns?: number;
  /** sessionStorage key for the scroll position; null disables restoring it. */
  scrollKey?: string | null;
  className?: string;
  "aria-label"?: string;
}

const MAX_PAGE_SIZE = 200;
/** Rows of metadata fetched beyond the rendered ones, so pages arrive before the user does. */
const PREFETCH_ROWS = 6;
/** Rows of images mounted beyond the viewport; small, to keep the DOM (and downloads) bounded. */
const OVERSCAN_ROWS = 1;

/**
 * Virtualized, paged image library picker. Give it a parent with a height; it fills it.
 */
export function ImagePicker({
  apiBase = "",
  pageSize = 50,
  onSelect,
  onSelectionChange,
  multiple = false,
  minCellSize = 160,
  maxColumns = 10,
  scrollKey,
  className,
  "aria-label": ariaLabel = "Image library",
}: ImagePickerProps) {
  const limit = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.floor(pageSize)));
  const storageKey = scrollKey === undefined ? `thumbs-picker:scroll:${apiBase}` : scrollKey;
  const [initialIndex] = useState(() => readSavedIndex(storageKey));

  const gridRef = useGridRef(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const columnOpts = useMemo(() => ({ minCellSize, minColumns: 2, maxColumns }), [minCellSize, maxColumns]);
  const { columnCount, cellSize, pageRows, setSize } = useColumnLayout(columnOpts);
  const [state] = useState(() => new PickerState(initialIndex));
  const library = usePagedLibrary({ apiBase, pageSize: limit, onRecover: () => state.recover() }, initialIndex);
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
  });
  const getActive = useCallback(() => state.getActive(), [state]);
  const setActive = useCallback((index: number) => state.setActive(index), [state]);

  // Handlers read the latest values through a ref so that cellProps keep one stable callback.
  const latest = useRef({ items, pages, prepended, multiple, onSelect, onSelectionChange, limit });
  latest.current = { items, pages, prepended, multiple, onSelect, onSelectionChange, limit };

  const choose = useCallback(
    (index: number) => {
      const cur = latest.current;
      state.setActive(index);
      const image = cur.items[index];
      if (!image) {
        const page = Math.floor((index - cur.prepended) / cur.limit);
        if (cur.pages.get(page)?.state === "failed") retry(page);
        return;
      }
      let next: Map<string, LibraryImage>;
      if (cur.multiple) {
        next = new Map(state.getSelected());
        if (next.has(image.url)) next.delete(image.url);
        else next.set(image.url, image);
      } else {
        next = new Map([[image.url, image]]);
      }
      state.setSelected(next);
      if (next.has(image.url)) cur.onSelect?.(image.url, image);
      cur.onSelectionChange?.([...next.keys()], [...next.values()]);
    },
    [retry, state],
  );

  const onKeyDown = useGridKeyboard({
    gridRef,
    rootRef,
    getActive,
    setActive,
    columnCount,
    itemCount: total ?? 0,
    pageRows,
    onActivate: choose,
  });

  const { beginResize, shiftBy, jumpTo } = anchor;
  const onCellsRendered = useCallback(
    (
      visible: { rowStartIndex: number; rowStopIndex: number },
      all: { rowStartIndex: number; rowStopIndex: number },
    ) => {
      if (columnCount === 0) return;
      const first = visible.rowStartIndex * columnCount;
      // Keep the roving tab stop on screen while focus is elsewhere, so Tab lands on a visible cell.
      const root = rootRef.current;
      const active = state.getActive();
      const lastVisible = (visible.rowStopIndex + 1) * columnCount - 1;
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
    [columnCount, itemCount, ensureRange, state],
  );

  const onResize = useCallback(
    (size: { width: number; height: number }) => {
      beginResize();
      setSize(size);
    },
    [beginResize, setSize],
  );

  // New images go in at the top; the user's place (and the keyboard's active cell) moves down with them.
  const { showNewer, newerCount } = library;
  const onShowNewer = useCallback(() => {
    const added = showNewer();
    if (added === null) {
      jumpTo(0);
      state.setActive(0);
    } else if (added > 0) {
      shiftBy(added);
      state.setActive(state.getActive() + added);
    }
  }, [showNewer, shiftBy, jumpTo, state]);

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
      onCellClick: choose,
    }),
    [items, itemCount, columnCount, cellSize, pages, limit, prepended, state, eagerStart, eagerStop, choose],
  );

  const firstPage = pages.get(0);
  const failed = [...pages.values()].filter((s) => s.state === "failed");
  const failedOffline = failed.length > 0 && failed.every((s) => s.state === "failed" && s.offline);
  let overlay = null;
  if (total === null && firstPage?.state === "failed") {
    overlay = firstPage.offline ? (
      <StatusPanel
        kind="error"
        title="You're offline."
        detail="Your image library will load by itself when the connection is back."
        actionLabel="Try again"
        onAction={() => retry()}
      />
    ) : (
      <StatusPanel
        kind="error"
        title="The library isn't responding right now."
        detail={`It will be tried again by itself; you can also try now. (${firstPage.error})`}
        actionLabel="Try again"
        onAction={() => retry()}
      />
    );
  } else if (total === 0) {
    overlay = (
      <StatusPanel
        kind="empty"
        title="Your library is empty."
        detail="Images you generate in the Playground will appear here."
        actionLabel="Refresh"
        onAction={reset}
      />
    );
  }

  return (
    <div
      ref={rootRef}
      className={className ? `tp-picker ${className}` : "tp-picker"}
      data-picker-root=""
      onKeyDown={onKeyDown}
    >
      {overlay === null && total !== null && <NewImagesNotice count={newerCount} onShow={onShowNewer} />}
      {overlay ?? (
        <Grid
          className="tp-grid"
          gridRef={gridRef}
          cellComponent={PickerCell}
          cellProps={cellProps}
          columnCount={columnCount}
          columnWidth={cellSize}
          rowCount={rowCount}
          rowHeight={cellSize}
          overscanCount={OVERSCAN_ROWS}
          onCellsRendered={onCellsRendered}
          onResize={onResize}
          aria-label={ariaLabel}
          aria-multiselectable={multiple || undefined}
          aria-busy={total === null || undefined}
          // Focus is parked here when the focused cell scrolls away (it shows a ring); arrows bring it back.
          tabIndex={-1}
          style={{ height: "100%", width: "100%", overflowX: "hidden" }}
        />
      )}
      {overlay === null && failed.length > 0 && (
        <FailedPagesBar count={failed.length} offline={failedOffline} onRetry={() => retry()} />
      )}
    </div>
  );
}
