import { useCallback, useLayoutEffect, useRef, useState, type MouseEvent } from "react";
import type { CellComponentProps } from "react-window";
import type { PickerStrings } from "./labels";
import type { PageStatus } from "./pageLoader";
import { useIsActive, useIsSelected, useRecovery, type PickerState } from "./pickerState";
import { Thumb } from "./Thumb";
import type { LibraryImage } from "./types";

export interface CellData {
  items: readonly (LibraryImage | undefined)[];
  itemCount: number;
  columnCount: number;
  cellSize: number;
  pages: ReadonlyMap<number, PageStatus>;
  pageSize: number;
  /** Images added at the top since opening: grid index i is bounded-list index i - prepended. */
  prepended: number;
  /** Active cell and selection (a store, so changes do not re-render every cell). */
  state: PickerState;
  /** Item indices [start, stop) of the first screen, loaded eagerly with high priority. */
  eagerStart: number;
  eagerStop: number;
  /** Cells before this item index show their tile without the thumbnail (a saved place is being restored). */
  holdBefore: number;
  /** A fast scroll is under way: cells are flat placeholders (scrollSeek.ts). */
  seeking: boolean;
  /** False right after a fast scroll stopped: the tiles left in view load their thumbnails at once. */
  deferThumbs: boolean;
  /** Click on a cell: select it (or retry its failed page); Shift extends, Ctrl/Cmd toggles. */
  onCellClick: (index: number, modifiers: { shift: boolean; toggle: boolean }) => void;
  /** Double-click: choose and confirm. */
  onCellConfirm: (index: number) => void;
  strings: PickerStrings;
}

const ROOT_SELECTOR = "[data-picker-root]";
const GRID_SELECTOR = "[role=grid]";

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
  const recovery = useRecovery(props.state);
  const ref = useRef<HTMLDivElement>(null);
  // Which image's tile currently says "Preview unavailable" (by id: the cell is reused for other images).
  const [unavailableId, setUnavailableId] = useState<number | null>(null);
  const { state } = props;
  const onUnavailable = useCallback(
    (id: number, unavailable: boolean) => {
      setUnavailableId((cur) => (unavailable ? id : cur === id ? null : cur));
      state.setUnavailable(id, unavailable);
    },
    [state],
  );
  const onRecovered = useCallback(() => state.thumbnailRecovered(), [state]);

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
  // A focused cell scrolled out of the DOM would drop focus to <body>; park it on the grid container,
  // which shows a focus ring, so focus stays visible and the next arrow key brings it back to a cell.
  // Only on unmount: while the element stays attached, React would restore focus to it anyway.
  useLayoutEffect(
    () => () => {
      // Read at unmount (the ref is still attached): the cell may have mounted empty (ragged last row).
      const el = ref.current;
      const grid = el?.closest<HTMLElement>(GRID_SELECTOR);
      if (el && grid && document.activeElement === el) grid.focus({ preventScroll: true });
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
    onClick: (e: MouseEvent) => props.onCellClick(index, { shift: e.shiftKey, toggle: e.ctrlKey || e.metaKey }),
    onDoubleClick: () => props.onCellConfirm(index),
    // Focus that arrives some other way (a screen reader, a script) moves the roving tab stop too.
    onFocus: () => props.state.setActive(index),
  };

  const status = image ? undefined : props.pages.get(Math.floor((index - props.prepended) / props.pageSize));
  const failed = status?.state === "failed";
  const retrying = status?.state === "retrying";
  // A failed or retrying cell keeps its words.
  if (props.seeking && !failed && !retrying) {
    // One flat box in the image's colour (the padding is the gap): no <img>, no rounded clipped layer.
    return (
      <div
        {...common}
        className="tp-cell tp-cell-seek"
        style={image?.color ? { ...style, backgroundColor: image.color } : style}
        aria-busy={image ? undefined : true}
        aria-selected={image ? selected : undefined}
        aria-label={image ? props.strings.imageLabel(image) : props.strings.loading}
        data-selected={selected || undefined}
      />
    );
  }

  if (!image) {
    const { strings } = props;
    const text = failed ? (status.offline ? strings.offlineCell : strings.failedCell) : retrying ? strings.retrying : null;
    return (
      <div {...common} aria-busy={!failed} aria-label={text ?? strings.loading}>
        <div className={failed || retrying ? "tp-tile tp-tile-error" : "tp-tile tp-skeleton"}>{text}</div>
      </div>
    );
  }

  return (
    <div
      {...common}
      aria-selected={selected}
      aria-label={
        unavailableId === image.id
          ? `${props.strings.imageLabel(image)}, ${props.strings.previewUnavailable.toLowerCase()}`
          : props.strings.imageLabel(image)
      }
      data-selected={selected || undefined}
    >
      <div className="tp-tile" style={image.color ? { backgroundColor: image.color } : undefined}>
        {index >= props.holdBefore && (
          <Thumb
            key={image.id}
            image={image}
            size={Math.round(props.cellSize)}
            eager={index >= props.eagerStart && index < props.eagerStop}
            defer={props.deferThumbs}
            recovery={recovery}
            unavailableText={props.strings.previewUnavailable}
            onUnavailable={onUnavailable}
            onRecovered={onRecovered}
          />
        )}
        {selected && <span className="tp-check" aria-hidden="true">✓</span>}
      </div>
    </div>
  );
}
