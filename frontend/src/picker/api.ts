import { PageError, type PageResult } from "./pageLoader";
import type { LibraryImage, LibraryPage } from "./types";

/** URL of one limit/offset page. apiBase "" means same origin as the page. */
export function libraryPageUrl(apiBase: string, limit: number, offset: number): string {
  const base = apiBase.replace(/\/+$/, "");
  return `${base}/api/library/images?limit=${limit}&offset=${offset}`;
}

/** HTTP statuses worth retrying: server trouble and rate limiting, not a bad request. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export async function fetchLibraryPage(
  apiBase: string,
  page: number,
  pageSize: number,
  signal: AbortSignal,
): Promise<PageResult<LibraryImage>> {
  const res = await fetch(libraryPageUrl(apiBase, pageSize, page * pageSize), {
    signal,
    headers: { Accept: "application/json" },
  });
  if (!res.ok) {
    let detail = `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { error?: string; detail?: string };
      if (body.detail || body.error) detail = `${detail}: ${body.detail ?? body.error}`;
    } catch {
      // Not JSON (e.g. a proxy's HTML error page): the status is all we have.
    }
    throw new PageError(detail, isRetryableStatus(res.status));
  }
  const body = (await res.json()) as LibraryPage;
  if (!Array.isArray(body.images) || typeof body.total !== "number") {
    throw new PageError("Malformed library response", false);
  }
  return { items: body.images, total: body.total };
}
