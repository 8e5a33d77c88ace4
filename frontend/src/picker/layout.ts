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
