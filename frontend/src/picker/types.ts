/** One image as returned by GET /api/library/images. */
export interface LibraryImage {
  id: number;
  /** Full original; handed to the caller on select, never shown in the grid unless the thumbnail is missing. */
  url: string;
  /** Signed proxy URL of a small JPEG, or null for legacy images without one. */
  thumbnail_url: string | null;
  /** The square cell at 1x (200 px) and 2x (400 px), for srcset; absent from older APIs. */
  cell_thumbnail_url?: string | null;
  cell_thumbnail_url_2x?: string | null;
  /** Null for legacy rows whose date was impossible (the API lists them last, by id). */
  created_at: string | null;
  width: number | null;
  height: number | null;
  /** Placeholder colour ("#rrggbb") painted until the thumbnail arrives. */
  color: string | null;
  pipeline_id: string | null;
  step: string | null;
  thumbnail_status?: string;
}

export interface LibraryPage {
  images: LibraryImage[];
  total: number;
  limit: number;
  offset: number;
  next_cursor?: string | null;
  /** Cursor of the page's first row: the `until` bound that keeps later pages stable under inserts. */
  head_cursor?: string | null;
  /** With `newer_than`: how many images are newer than that cursor in all. */
  count?: number;
  /** With `newer_than`: the count stopped at a cap (there are at least `count`). */
  count_capped?: boolean;
  /** With `until`: images at or below the bound now (`total` also counts those added above it). */
  until_total?: number;
}
