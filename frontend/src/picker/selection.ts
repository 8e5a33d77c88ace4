/** Pure selection rules (single, toggle, Shift-range, select all), keyed by full image URL. */
import type { LibraryImage } from "./types";
import { isWebAddress } from "./webAddress";

/** Selected URLs in selection order; the image is null while its page has not been seen. */
export type Selection = ReadonlyMap<string, LibraryImage | null>;

export type SelectMode = "replace" | "toggle" | "range";

/** Only a loaded image whose url is a web address is ever handed to the host (a legacy row's may be `javascript:`). */
function selectable(item: LibraryImage | undefined): item is LibraryImage {
  return item !== undefined && isWebAddress(item.url);
}

/**
 * The selection after choosing `index`. Single-select always replaces. Multi-select: a plain choice
 * or Ctrl/Cmd toggles; Shift selects the loaded images from `anchor` to `index` (kept in list order,
 * added to what was selected). Unloaded positions in a range are skipped.
 */
export function nextSelection(
  current: Selection,
  items: readonly (LibraryImage | undefined)[],
  index: number,
  anchor: number | null,
  mode: SelectMode,
  multiple: boolean,
): Selection {
  const image = items[index];
  if (!selectable(image)) return current;
  if (!multiple) return new Map([[image.url, image]]);
  if (mode === "range" && anchor !== null) {
    const next = new Map(current);
    const [lo, hi] = anchor <= index ? [anchor, index] : [index, anchor];
    for (let i = lo; i <= hi; i++) {
      const item = items[i];
      if (selectable(item)) next.set(item.url, item);
    }
    return next;
  }
  const next = new Map(current);
  if (next.has(image.url)) next.delete(image.url);
  else next.set(image.url, image);
  return next;
}

/** Ctrl/Cmd+A: every image loaded so far (unloaded pages cannot be selected without their URLs). */
export function selectAllLoaded(current: Selection, items: readonly (LibraryImage | undefined)[]): Selection {
  const next = new Map(current);
  for (const item of items) if (selectable(item)) next.set(item.url, item);
  return next;
}

/** A controlled `selected` list as a Selection, filling in images already known. */
export function selectionFromUrls(
  urls: readonly string[],
  known: Selection,
  items: readonly (LibraryImage | undefined)[],
): Selection {
  const missing = new Set(urls.filter((u) => !known.get(u)));
  const found = new Map<string, LibraryImage>();
  if (missing.size > 0) for (const item of items) if (item && missing.has(item.url)) found.set(item.url, item);
  return new Map(urls.map((u) => [u, known.get(u) ?? found.get(u) ?? null]));
}

export function selectedImages(selection: Selection): LibraryImage[] {
  return [...selection.values()].filter((img): img is LibraryImage => img !== null);
}
