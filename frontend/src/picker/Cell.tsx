import { useLayoutEffect, useRef } from "react";
import type { CellComponentProps } from "react-window";
import { imageLabel } from "./labels";
import type { PageStatus } from "./pageLoader";
import { useIsActive, useIsSelected, type PickerState } from "./pickerState";
import { Thumb } from "./Thumb";
import type { LibraryImage } from "./types";

export interface CellData {
  items: readonly (LibraryImage | undefined)[];
  itemCount: number;
  columnCount: number;
  cellSize: number;
  pages: ReadonlyMap<number, PageStatus>;
  pageSize: number;
  /** Active cell and selection (a store, so changes do not re-render every cell). */
  state: PickerState;
  /** Item indices [start, stop) of the first screen, loaded eagerly with high priority. */
  eagerStart: number;
  eagerStop: number;
  /** Click on a cell: select it (or retry its failed page). */
  onCellClick: (index: number) => void;
}

const ROOT_SELECTOR = "[data-picker-root]";

/**
 * One grid cell. Module-level on purpose: react-window memoizes cells by component identity, and
 * an inline component would remount every cell on each render.
 */
export function PickerCell(props: CellComponentProps<CellData>) {
  const { columnIndex, rowIndex, style, ariaAttributes, items, itemCount, columnCount } = props;
  const index = rowIndex * columnCount + columnIndex;
  const image = index < itemCount ? items[index] : undefined;
  const active = useIsActive(props.state, index);
  const selected = useIsSelected(props.state, image?.url);
  const ref = useRef<HTMLDivElement>(null);

  // Roving focus: the active cell takes focus if focus is anywhere in the picker (the user is
  // navigating). The cell may only mount after the grid scrolls to it, hence an effect, not the key handler.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!active || !el) return;
    const root = el.closest<HTMLElement>(ROOT_SELECTOR);
    if (root && root.contains(document.activeElement) && document.activeElement !== el) {
      el.focus({ preventScroll: true });
    }
  }, [active]);
  // A focused cell scrolled out of the DOM would drop focus to <body>; park it on the picker root so
  // keys keep working. Only on unmount: while the element stays attached, React would restore focus
  // to it after the commit anyway.
  useLayoutEffect(
    () => () => {
      // Read at unmount (the ref is still attached): the cell may have mounted empty (ragged last row).
      const el = ref.current;
      const root = el?.closest<HTMLElement>(ROOT_SELECTOR);
      if (el && root && document.activeElement === el) root.focus({ preventScroll: true });
    },
    [],
  );

  if (index >= itemCount) return null; // ragged last row
  const common = {
    ...ariaAttributes,
    ref,
    style,
    className: "tp-cell",
    "data-index": index,
    tabIndex: active ? 0 : -1,
    onClick: () => props.onCellClick(index),
  };

  if (!image) {
    const status = props.pages.get(Math.floor(index / props.pageSize));
    const failed = status?.state === "failed";
    const retrying = status?.state === "retrying";
    return (
      <div {...common} aria-busy={!failed} aria-label={failed ? "Failed to load" : "Loading"}>
        <div className={failed || retrying ? "tp-tile tp-tile-error" : "tp-tile tp-skeleton"}>
          {failed ? "Failed to load" : retrying ? "Retrying…" : null}
        </div>
      </div>
    );
  }

  return (
    <div {...common} aria-selected={selected} aria-label={imageLabel(image)} data-selected={selected || undefined}>
      <div className="tp-tile" style={image.color ? { backgroundColor: image.color } : undefined}>
        <Thumb
          key={image.id}
          image={image}
          size={Math.round(props.cellSize)}
          eager={index >= props.eagerStart && index < props.eagerStop}
        />
        {selected && <span className="tp-check" aria-hidden="true">✓</span>}
      </div>
    </div>
  );
}
