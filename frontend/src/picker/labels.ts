import type { LibraryImage } from "./types";

/**
 * Every word the picker shows or announces, so a host can translate it (`strings` prop, partial:
 * missing keys fall back to these English defaults).
 */
export interface PickerStrings {
  gridLabel: string;
  /** Accessible name of a cell. */
  imageLabel: (image: LibraryImage) => string;
  loading: string;
  retrying: string;
  failedCell: string;
  offlineCell: string;
  previewUnavailable: string;
  offlineTitle: string;
  offlineDetail: string;
  serverTitle: string;
  serverDetail: (error: string) => string;
  tryAgain: string;
  emptyTitle: string;
  emptyDetail: string;
  refresh: string;
  failedPages: (pages: number, offline: boolean) => string;
  /** The bar when only thumbnails failed: `previews` tiles on screen say "Preview unavailable". */
  failedPreviews: (previews: number) => string;
  retry: string;
  /** `capped`: there are at least `count` (the API stopped counting). */
  newImages: (count: number, capped: boolean) => string;
  showNewImages: (count: number, capped: boolean) => string;
}

/** Accessible name for a cell, built from the image's metadata (no filename is exposed by the API). */
export function imageLabel(image: LibraryImage): string {
  const parts = [`Image ${image.id}`];
  if (image.step) parts.push(image.step);
  if (image.pipeline_id) parts.push(`pipeline ${image.pipeline_id}`);
  if (image.width && image.height) parts.push(`${image.width}×${image.height}`);
  // A legacy row may have no date (created_at null): new Date(null) would read as 1970-01-01.
  const created = typeof image.created_at === "string" && image.created_at !== "" ? new Date(image.created_at) : null;
  if (created && !Number.isNaN(created.getTime())) {
    parts.push(`created ${created.toISOString().slice(0, 16).replace("T", " ")} UTC`);
  }
  return parts.join(", ");
}

const newImages = (n: number, capped: boolean) => (capped ? `${n}+ new images` : n === 1 ? "1 new image" : `${n} new images`);

export const DEFAULT_STRINGS: PickerStrings = {
  gridLabel: "Image library",
  imageLabel,
  loading: "Loading",
  retrying: "Retrying…",
  failedCell: "Failed to load",
  offlineCell: "Offline",
  previewUnavailable: "Preview unavailable",
  offlineTitle: "You're offline.",
  offlineDetail: "Your image library will load by itself when the connection is back.",
  serverTitle: "The library isn't responding right now.",
  serverDetail: (error) => `It will be tried again by itself; you can also try now. (${error})`,
  tryAgain: "Try again",
  emptyTitle: "Your library is empty.",
  emptyDetail: "Images you generate in the Playground will appear here.",
  refresh: "Refresh",
  failedPages: (pages, offline) =>
    offline
      ? "You're offline: some images could not be loaded. They will load when you're back online."
      : `Some images could not be loaded (${pages} ${pages === 1 ? "page" : "pages"}).`,
  failedPreviews: (previews) =>
    previews === 1
      ? "A preview could not be loaded; it is tried again by itself."
      : "Some previews could not be loaded; they are tried again by themselves.",
  retry: "Retry",
  newImages,
  showNewImages: (n, capped) => `Show ${newImages(n, capped)}`,
};
