import { useCallback, type KeyboardEvent, type RefObject } from "react";
import type { GridImperativeAPI } from "react-window";
import { nextIndex } from "./keyboard";
import { rowOf } from "./layout";

export interface GridKeyboardOptions {
  gridRef: RefObject<GridImperativeAPI | null>;
  getActive: () => number;
  setActive: (index: number) => void;
  columnCount: number;
  itemCount: number;
  pageRows: number;
  /** Enter/Space on the active cell. */
  onActivate: (index: number) => void;
}

/**
 * Roving focus for the grid. Focus itself is moved by the active cell when it renders (it may not
 * exist in the DOM yet), so this only updates the index and scrolls its row into view.
 */
export function useGridKeyboard(opts: GridKeyboardOptions): (e: KeyboardEvent<HTMLElement>) => void {
  const { gridRef, getActive, setActive, columnCount, itemCount, pageRows, onActivate } = opts;
  return useCallback(
    (e: KeyboardEvent<HTMLElement>) => {
      if (e.altKey) return;
      const activeIndex = getActive();
      if (e.key === "Enter" || e.key === " ") {
        if (activeIndex < itemCount) {
          e.preventDefault(); // Space would scroll the grid
          onActivate(activeIndex);
        }
        return;
      }
      const next = nextIndex(activeIndex, e, { columnCount, itemCount, pageRows });
      if (next === null) return;
      e.preventDefault(); // arrows and PageUp/Down must not also scroll natively
      setActive(next);
      gridRef.current?.scrollToRow({ index: rowOf(next, columnCount), align: "auto", behavior: "instant" });
    },
    [gridRef, getActive, setActive, columnCount, itemCount, pageRows, onActivate],
  );
}
