/** Pure grid maths: no DOM, no React, so it is unit-tested directly. */

export interface ColumnOptions {
  /** Smallest acceptable cell edge in px; columns are added while cells stay at least this big. */
  minCellSize: number;
  /** Floor on the column count (2 keeps a phone from showing one giant image per row). */
  minColumns: number;
  /** Ceiling, so a very wide screen does not turn into a wall of tiny tiles. */
  maxColumns: number;
}

export const DEFAULT_COLUMNS: ColumnOptions = { minCellSize: 150, minColumns: 2, maxColumns: 12 };

/** Column count for a content width. 0 while the width is unknown (before the first resize). */
export function columnCountFor(width: number, opts: ColumnOptions = DEFAULT_COLUMNS): number {
  if (!(width > 0)) return 0;
  const fit = Math.floor(width / opts.minCellSize);
  return Math.min(opts.maxColumns, Math.max(opts.minColumns, fit));
}

/** Square cell edge that fills the width exactly; floored so rounding never causes horizontal overflow. */
export function cellSizeFor(width: number, columnCount: number): number {
  if (columnCount <= 0 || !(width > 0)) return 0;
  return Math.floor((width / columnCount) * 100) / 100;
}

export function rowCountFor(itemCount: number, columnCount: number): number {
  if (columnCount <= 0 || itemCount <= 0) return 0;
  return Math.ceil(itemCount / columnCount);
}

export function indexOf(rowIndex: number, columnIndex: number, columnCount: number): number {
  return rowIndex * columnCount + columnIndex;
}

export function rowOf(index: number, columnCount: number): number {
  return columnCount > 0 ? Math.floor(index / columnCount) : 0;
}

/** Rows fully visible in a viewport: the PageUp/PageDown step (at least one). */
export function visibleRowsFor(height: number, cellSize: number): number {
  if (!(cellSize > 0)) return 1;
  return Math.max(1, Math.floor(height / cellSize));
}

/**
 * Row to scroll to so that the item that was at the top stays at the top after the column count changes.
 * Clamped to the grid, since scrollToRow throws on an index out of range.
 */
export function anchorRowFor(anchorIndex: number, columnCount: number, rowCount: number): number {
  if (rowCount <= 0 || columnCount <= 0) return 0;
  return Math.min(rowCount - 1, Math.max(0, Math.floor(anchorIndex / columnCount)));
}

/** Item range [start, stop] covered by a rendered row range, clamped to the item count. */
export function itemRangeForRows(
  rowStart: number,
  rowStop: number,
  columnCount: number,
  itemCount: number,
): [number, number] | null {
  if (columnCount <= 0 || itemCount <= 0 || rowStop < rowStart) return null;
  const start = Math.max(0, rowStart * columnCount);
  const stop = Math.min(itemCount - 1, (rowStop + 1) * columnCount - 1);
  return start <= stop ? [start, stop] : null;
}

/** Page numbers (limit/offset pages of pageSize) that overlap the item range [start, stop]. */
export function pagesForRange(start: number, stop: number, pageSize: number, total: number | null = null): number[] {
  if (pageSize <= 0) throw new RangeError("pageSize must be positive");
  const lo = Math.max(0, Math.floor(start));
  const hi = total === null ? Math.floor(stop) : Math.min(Math.floor(stop), total - 1);
  if (hi < lo) return [];
  const pages: number[] = [];
  for (let p = Math.floor(lo / pageSize); p <= Math.floor(hi / pageSize); p++) pages.push(p);
  return pages;
}

/** Where the user is: the top-left item, and how far (0..1 of a row) the view is scrolled into its row. */
export interface TopAnchor {
  index: number;
  fraction: number;
}

/** The place for a scroll offset. The epsilon keeps an exact row boundary from reading as the row above. */
export function topAnchorFor(scrollTop: number, cellSize: number, columnCount: number): TopAnchor {
  if (!(cellSize > 0) || columnCount <= 0) return { index: 0, fraction: 0 };
  const rows = Math.max(0, scrollTop) / cellSize;
  const row = Math.floor(rows + 1e-6);
  return { index: row * columnCount, fraction: Math.max(0, Math.min(0.999, rows - row)) };
}

/**
 * Scroll offset that puts the anchor's item in the top row, as far into it as before. Computed from
 * the anchor alone, never from the previous offset, so repeated layouts cannot accumulate rounding.
 */
export function anchorScrollTop(anchor: TopAnchor, cellSize: number, columnCount: number, rowCount: number): number {
  if (!(cellSize > 0) || columnCount <= 0 || rowCount <= 0) return 0;
  const row = anchorRowFor(anchor.index, columnCount, rowCount);
  return (row + anchor.fraction) * cellSize;
}
