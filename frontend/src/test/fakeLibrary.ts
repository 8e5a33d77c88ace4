/**
 * An in-memory GET /api/library/images for component tests, with the paging contract the picker
 * relies on: limit/offset, `head_cursor`, `until=<cursor>` (rows at or older than it) and
 * `newer_than=<cursor>` (rows strictly newer, with `count`). Newest first; a cursor is the image id.
 */
import type { LibraryImage } from "../picker/types";

export interface FakeLibrary {
  images: LibraryImage[]; // newest first
  requests: URL[];
  /** When set, answers every request with this instead (status, optional Retry-After seconds). */
  failWith: { status: number; retryAfter?: number } | null;
  /** Predicate for requests to fail with failWith (all by default). */
  failWhen: (url: URL) => boolean;
  offline: boolean;
  /** newer_than stops counting here and says so (`count_capped`), like the real API. */
  newerCap: number;
  insert: (count: number) => LibraryImage[];
  fetch: (input: RequestInfo | URL) => Promise<Response>;
}

export function makeImage(id: number): LibraryImage {
  return {
    id,
    url: `/full/${id}.jpg`,
    thumbnail_url: `/t/${id}.jpg`,
    created_at: new Date(Date.UTC(2026, 0, 1) + id * 60_000).toISOString(),
    width: 800,
    height: 600,
    color: "#888888",
    pipeline_id: "p",
    step: "generate",
  };
}

export function fakeLibrary(total: number): FakeLibrary {
  const lib: FakeLibrary = {
    images: Array.from({ length: total }, (_, i) => makeImage(total - i)),
    requests: [],
    failWith: null,
    failWhen: () => true,
    offline: false,
    newerCap: 1000,
    insert(count) {
      const top = lib.images[0]?.id ?? 0;
      const added = Array.from({ length: count }, (_, i) => makeImage(top + count - i));
      lib.images = [...added, ...lib.images];
      return added;
    },
    async fetch(input) {
      const url = new URL(String(input), "http://picker.test");
      lib.requests.push(url);
      if (lib.offline) throw new TypeError("Failed to fetch");
      if (lib.failWith && lib.failWhen(url)) {
        const headers: Record<string, string> = { "Content-Type": "application/json" };
        if (lib.failWith.retryAfter !== undefined) headers["Retry-After"] = String(lib.failWith.retryAfter);
        return new Response(JSON.stringify({ error: "unavailable", detail: "database is down" }), {
          status: lib.failWith.status,
          headers,
        });
      }
      const q = url.searchParams;
      const limit = Number(q.get("limit") ?? 50);
      const offset = Number(q.get("offset") ?? 0);
      const newerThan = q.get("newer_than");
      const until = q.get("until");
      let rows = lib.images;
      if (newerThan !== null) rows = rows.filter((img) => img.id > Number(newerThan));
      if (until !== null) rows = rows.filter((img) => img.id <= Number(until));
      const page = rows.slice(offset, offset + limit);
      const body = {
        images: page,
        total: rows.length,
        limit,
        offset,
        head_cursor: page[0] ? String(page[0].id) : null,
        ...(newerThan !== null
          ? { count: Math.min(rows.length, lib.newerCap), count_capped: rows.length >= lib.newerCap }
          : {}),
      };
      return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
    },
  };
  return lib;
}
