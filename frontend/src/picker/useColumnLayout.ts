import { useCallback, useState } from "react";
import { cellSizeFor, columnCountFor, visibleRowsFor, type ColumnOptions } from "./layout";

export interface ColumnLayout {
  width: number;
  height: number;
  columnCount: number;
  cellSize: number;
  /** Rows that fit in the viewport: the PageUp/PageDown step. */
  pageRows: number;
  setSize: (size: { width: number; height: number }) => void;
}

/** Column count and square cell size from the grid's measured width (react-window's onResize). */
export function useColumnLayout(opts: ColumnOptions): ColumnLayout {
  const [size, setSizeState] = useState({ width: 0, height: 0 });
  const setSize = useCallback((next: { width: number; height: number }) => {
    setSizeState((prev) => (prev.width === next.width && prev.height === next.height ? prev : next));
  }, []);
  const columnCount = columnCountFor(size.width, opts);
  const cellSize = cellSizeFor(size.width, columnCount);
  return { ...size, columnCount, cellSize, pageRows: visibleRowsFor(size.height, cellSize), setSize };
}
