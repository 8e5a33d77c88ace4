import { afterEach, describe, expect, it, vi } from "vitest";
import { fetchLibraryPage, isRetryableStatus, libraryPageUrl } from "./api";
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
