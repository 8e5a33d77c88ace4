import { PageError, type PageResult } from "./pageLoader";
import type { LibraryImage, LibraryPage } from "./types";

const IMAGES_PATH = "/api/library/images";

/** Only images of this pipeline and/or step (sent as `pipeline_id` / `step` query parameters). */
export interface LibraryFilters {
  pipeline?: string;
  step?: string;
}

/** How the picker talks to the API when it does the fetching itself. */
export interface RequestOptions {
  /** Extra request headers (e.g. Authorization for a cross-origin API). */
  headers?: Record<string, string>;
  filters?: LibraryFilters;
}

function filterParams(filters: LibraryFilters | undefined) {
  return { pipeline_id: filters?.pipeline, step: filters?.step };
}

function requestInit(signal: AbortSignal, options: RequestOptions | undefined): RequestInit {
  return { signal, headers: { Accept: "application/json", ...options?.headers } };
}

function imagesUrl(apiBase: string, params: Record<string, string | number | null | undefined>): string {
  const base = apiBase.replace(/\/+$/, "");
  const query = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join("&");
  return `${base}${IMAGES_PATH}?${query}`;
}

/** URL of one limit/offset page, bounded by `until` (a head cursor) when given. apiBase "" = same origin. */
export function libraryPageUrl(
  apiBase: string,
  limit: number,
  offset: number,
  until: string | null = null,
  filters?: LibraryFilters,
): string {
  return imagesUrl(apiBase, { limit, offset, until, ...filterParams(filters) });
}

/** URL asking for the images strictly newer than a cursor (and how many there are). */
export function newerThanUrl(apiBase: string, cursor: string, limit: number, filters?: LibraryFilters): string {
  return imagesUrl(apiBase, { newer_than: cursor, limit, ...filterParams(filters) });
}

/** HTTP statuses worth retrying: server trouble and rate limiting, not a bad request. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** Retry-After in ms (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

async function errorFor(res: Response): Promise<PageError> {
  let detail = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: string; detail?: string };
    if (body.detail || body.error) detail = `${detail}: ${body.detail ?? body.error}`;
  } catch {
    // Not JSON (e.g. a proxy's HTML error page): the status is all we have.
  }
  return new PageError(detail, isRetryableStatus(res.status), parseRetryAfter(res.headers.get("Retry-After")));
}

/**
 * The body of a 200 as JSON. A captive portal's login page or a proxy's HTML served as 200 is not a
 * listing: a retryable failure that says so, not the JSON parser's message ("Unexpected token '<'...").
 */
async function jsonBody(res: Response): Promise<LibraryPage> {
  try {
    return (await res.json()) as LibraryPage;
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    const type = res.headers.get("Content-Type")?.split(";")[0]?.trim() || "no content type";
    throw new PageError(`HTTP ${res.status}, but not a JSON listing (${type})`, true);
  }
}

/** Id of the element in which the server puts the listing's first page (thumbs/frontend.py). */
export const INLINE_FIRST_PAGE_ID = "thumbs-first-page";

/**
 * The first page the server put into the HTML, so the first screen needs no API round trip.
 * Taken once (a refresh or Retry asks the API), and only when it is the page this picker would
 * ask for: same origin, same page size, no filters.
 */
export function takeInlineFirstPage(apiBase: string, pageSize: number, options?: RequestOptions): LibraryPage | null {
  if (typeof document === "undefined" || apiBase !== "") return null;
  if (options?.filters && Object.values(options.filters).some((value) => value)) return null;
  const element = document.getElementById(INLINE_FIRST_PAGE_ID);
  if (!element) return null;
  element.remove();
  try {
    const body = JSON.parse(element.textContent ?? "") as LibraryPage;
    const usable = Array.isArray(body.images) && typeof body.total === "number";
    return usable && body.limit === pageSize && body.offset === 0 ? body : null;
  } catch {
    return null;
  }
}

export async function fetchLibraryPage(
  apiBase: string,
  page: number,
  pageSize: number,
  signal: AbortSignal,
  until: string | null = null,
  options?: RequestOptions,
): Promise<PageResult<LibraryImage>> {
  const inline = page === 0 && until === null ? takeInlineFirstPage(apiBase, pageSize, options) : null;
  let body: LibraryPage;
  if (inline) {
    body = inline;
  } else {
    const url = libraryPageUrl(apiBase, pageSize, page * pageSize, until, options?.filters);
    const res = await fetch(url, requestInit(signal, options));
    if (!res.ok) throw await errorFor(res);
    body = await jsonBody(res);
  }
  return pageResult(body);
}

/** A listing page as the loader takes it (the API's answer, or the one inline in the HTML). */
export function pageResult(body: LibraryPage): PageResult<LibraryImage> {
  if (!Array.isArray(body.images) || typeof body.total !== "number") {
    throw new PageError("Malformed library response", false);
  }
  const result: PageResult<LibraryImage> = { items: body.images, total: body.total };
  if (typeof body.head_cursor === "string") result.headCursor = body.head_cursor;
  if (typeof body.until_total === "number") result.boundedTotal = body.until_total;
  return result;
}

export interface NewerImages {
  /** Newest first, at most the limit asked for. */
  images: LibraryImage[];
  /** How many images are newer than the cursor in all (may exceed images.length). */
  count: number;
  /** Cursor of the newest of them, the next poll's starting point. */
  headCursor: string | null;
  /** The API stopped counting (`count_capped`): there are at least `count`. */
  capped: boolean;
}

export async function fetchNewerImages(
  apiBase: string,
  cursor: string,
  limit: number,
  signal: AbortSignal,
  options?: RequestOptions,
): Promise<NewerImages> {
  const res = await fetch(newerThanUrl(apiBase, cursor, limit, options?.filters), requestInit(signal, options));
  if (!res.ok) throw await errorFor(res);
  const body = await jsonBody(res);
  if (!Array.isArray(body.images)) throw new PageError("Malformed library response", false);
  const count = typeof body.count === "number" ? body.count : body.images.length;
  const headCursor = typeof body.head_cursor === "string" ? body.head_cursor : null;
  return { images: body.images, count, headCursor, capped: body.count_capped === true };
}
