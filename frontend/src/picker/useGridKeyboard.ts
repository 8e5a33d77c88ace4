import { useCallback, type KeyboardEvent, type RefObject } from "react";
import type { GridImperativeAPI } from "react-window";
import { nextIndex } from "./keyboard";
import { rowOf } from "./layout";

export interface ActivateKey {
  key: "Enter" | " ";
  /** Shift held: extend a range (multi-select). */
  shift: boolean;
}

export interface GridKeyboardOptions {
  gridRef: RefObject<GridImperativeAPI | null>;
  rootRef: RefObject<HTMLElement | null>;
  getActive: () => number;
  setActive: (index: number) => void;
  columnCount: number;
  itemCount: number;
  pageRows: number;
  /** Enter/Space on the active cell. */
  onActivate: (index: number, how: ActivateKey) => void;
  /** Shift+arrow (etc.) moved the active cell from `from` to `to`: extend the selection. */
  onExtend?: (from: number, to: number) => void;
  /** Ctrl/Cmd+A. */
  onSelectAll?: () => void;
}

/**
 * Roving focus for the grid. Focus itself is moved by the active cell when it renders (it may not
 * exist in the DOM yet), so this only updates the index and scrolls its row into view.
 */
export function useGridKeyboard(opts: GridKeyboardOptions): (e: KeyboardEvent<HTMLElement>) => void {
  const { gridRef, rootRef, getActive, setActive, columnCount, itemCount, pageRows, onActivate, onExtend, onSelectAll } =
    opts;
  return useCallback(
    (e: KeyboardEvent<HTMLElement>) => {
      if (e.altKey || !isGridTarget(e.target, rootRef.current, gridRef.current?.element ?? null)) return;
      const activeIndex = getActive();
      if (e.key === "Enter" || e.key === " ") {
        if (activeIndex < itemCount) {
          e.preventDefault(); // Space would scroll the grid
          onActivate(activeIndex, { key: e.key, shift: e.shiftKey });
        }
        return;
      }
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "a") {
        if (onSelectAll) {
          e.preventDefault(); // not the page's text
          onSelectAll();
        }
        return;
      }
      const next = nextIndex(activeIndex, e, { columnCount, itemCount, pageRows });
      if (next === null) return;
      e.preventDefault(); // arrows and PageUp/Down must not also scroll natively
      setActive(next);
      if (e.shiftKey && onExtend) onExtend(activeIndex, next);
      gridRef.current?.scrollToRow({ index: rowOf(next, columnCount), align: "auto", behavior: "instant" });
    },
    [gridRef, rootRef, getActive, setActive, columnCount, itemCount, pageRows, onActivate, onExtend, onSelectAll],
  );
}

/**
 * Keys belong to the grid only when they come from a cell or from the grid container itself (where
 * focus is parked). Buttons in the picker (Retry, new images) handle their own Enter/Space/arrows.
 */
export function isGridTarget(target: EventTarget, root: HTMLElement | null, grid: HTMLElement | null): boolean {
  if (!(target instanceof Element)) return false;
  if (target === grid || target === root) return true;
  return target.getAttribute("role") === "gridcell" && grid !== null && grid.contains(target);
}
