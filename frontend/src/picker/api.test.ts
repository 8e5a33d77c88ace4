import { afterEach, describe, expect, it, vi } from "vitest";
import { fetchLibraryPage, fetchNewerImages, isRetryableStatus, libraryPageUrl, parseRetryAfter } from "./api";
import { PageError } from "./pageLoader";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

describe("libraryPageUrl", () => {
  it("builds limit/offset URLs on the same origin or an API base", () => {
    expect(libraryPageUrl("", 50, 100)).toBe("/api/library/images?limit=50&offset=100");
    expect(libraryPageUrl("http://api.test/", 20, 0)).toBe("http://api.test/api/library/images?limit=20&offset=0");
  });
});

describe("fetchLibraryPage", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("asks for page n at offset n * pageSize and returns items and total", async () => {
    const fetchMock = vi.fn(async () => json(200, { images: [{ id: 1 }], total: 1234, limit: 50, offset: 150 }));
    vi.stubGlobal("fetch", fetchMock);
    const result = await fetchLibraryPage("", 3, 50, new AbortController().signal);
    expect(fetchMock).toHaveBeenCalledWith("/api/library/images?limit=50&offset=150", expect.anything());
    expect(result).toEqual({ items: [{ id: 1 }], total: 1234 });
  });

  it("turns a JSON error into a retryable PageError with the API's detail", async () => {
    vi.stubGlobal("fetch", async () => json(503, { error: "database_unavailable", detail: "the library database is unavailable" }));
    const err = await fetchLibraryPage("", 0, 50, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PageError);
    expect((err as PageError).retryable).toBe(true);
    expect((err as PageError).message).toBe("HTTP 503: the library database is unavailable");
  });

  it("a 200 that is not JSON (a captive portal's HTML, a truncated body) is a retryable failure that says so", async () => {
    vi.stubGlobal("fetch", async () => new Response("<html>login</html>", { status: 200, headers: { "Content-Type": "text/html; charset=utf-8" } }));
    let err = (await fetchLibraryPage("", 0, 50, new AbortController().signal).catch((e: unknown) => e)) as PageError;
    expect(err).toBeInstanceOf(PageError);
    expect([err.retryable, err.message]).toEqual([true, "HTTP 200, but not a JSON listing (text/html)"]);
    vi.stubGlobal("fetch", async () => new Response('{"images": [', { status: 200, headers: { "Content-Type": "application/json" } }));
    err = (await fetchLibraryPage("", 0, 50, new AbortController().signal).catch((e: unknown) => e)) as PageError;
    expect([err.retryable, err.message]).toEqual([true, "HTTP 200, but not a JSON listing (application/json)"]);
  });

  it("does not retry a bad request, and survives a non-JSON error body", async () => {
    vi.stubGlobal("fetch", async () => new Response("<html>nope</html>", { status: 400 }));
    const err = (await fetchLibraryPage("", 0, 50, new AbortController().signal).catch((e: unknown) => e)) as PageError;
    expect(err.retryable).toBe(false);
    expect(err.message).toBe("HTTP 400");
  });

  it("rejects a malformed body instead of rendering nothing", async () => {
    vi.stubGlobal("fetch", async () => json(200, { items: [] }));
    await expect(fetchLibraryPage("", 0, 50, new AbortController().signal)).rejects.toThrow("Malformed");
  });
});

describe("isRetryableStatus", () => {
  it("retries server errors, timeouts and rate limits only", () => {
    expect([500, 502, 503, 408, 429].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 422].some(isRetryableStatus)).toBe(false);
  });
});

describe("stable paging and new images", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("adds the until bound to page URLs and reads head_cursor", async () => {
    expect(libraryPageUrl("", 50, 100, "abc=")).toBe("/api/library/images?limit=50&offset=100&until=abc%3D");
    const fetchMock = vi.fn(async () => json(200, { images: [], total: 0, limit: 50, offset: 0, head_cursor: "H" }));
    vi.stubGlobal("fetch", fetchMock);
    const result = await fetchLibraryPage("", 1, 50, new AbortController().signal, "H");
    expect(fetchMock).toHaveBeenCalledWith("/api/library/images?limit=50&offset=50&until=H", expect.anything());
    expect(result.headCursor).toBe("H");
    expect(result.boundedTotal).toBeUndefined(); // an API that predates until_total
    fetchMock.mockImplementationOnce(async () =>
      json(200, { images: [], total: 9, limit: 50, offset: 50, head_cursor: "H", until_total: 7 }),
    );
    expect((await fetchLibraryPage("", 1, 50, new AbortController().signal, "H")).boundedTotal).toBe(7);
  });

  it("asks newer_than and returns the images, their count and the new head", async () => {
    const fetchMock = vi.fn(async () => json(200, { images: [{ id: 9 }], count: 4, head_cursor: "N", total: 4 }));
    vi.stubGlobal("fetch", fetchMock);
    const found = await fetchNewerImages("", "H", 200, new AbortController().signal);
    expect(fetchMock).toHaveBeenCalledWith("/api/library/images?newer_than=H&limit=200", expect.anything());
    expect(found).toEqual({ images: [{ id: 9 }], count: 4, headCursor: "N", capped: false });
  });

  it("passes Retry-After on to the loader", async () => {
    vi.stubGlobal("fetch", async () => new Response("busy", { status: 503, headers: { "Retry-After": "7" } }));
    const err = (await fetchLibraryPage("", 0, 50, new AbortController().signal).catch((e: unknown) => e)) as PageError;
    expect(err.retryAfterMs).toBe(7000);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", Date.UTC(2026, 0, 1))).toBe(10_000);
  });
});
