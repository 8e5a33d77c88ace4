// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { INLINE_FIRST_PAGE_ID, fetchLibraryPage, takeInlineFirstPage } from "./api";
import { thumbSource, thumbSrcSet } from "./Thumb";
import type { LibraryImage } from "./types";

const image = (id: number, extra: Partial<LibraryImage> = {}): LibraryImage => ({
  id, url: `/full/${id}.png`, thumbnail_url: `/t/s/thumb/${id}.jpg`, created_at: "2026-01-01T00:00:00Z",
  width: 1024, height: 1024, color: "#808080", pipeline_id: "p", step: "s", ...extra,
});

function inline(body: unknown) {
  const element = document.createElement("script");
  element.id = INLINE_FIRST_PAGE_ID;
  element.type = "application/json";
  element.textContent = JSON.stringify(body);
  document.head.append(element);
}

afterEach(() => {
  document.getElementById(INLINE_FIRST_PAGE_ID)?.remove();
  vi.unstubAllGlobals();
});

describe("the first page inline in the HTML", () => {
  const page = { images: [image(3), image(2)], total: 2, limit: 50, offset: 0, head_cursor: "h" };

  it("is used for page 0 instead of a request, once", async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ ...page, total: 99 }), { status: 200 }));
    vi.stubGlobal("fetch", fetchMock);
    inline(page);
    const first = await fetchLibraryPage("", 0, 50, new AbortController().signal);
    expect(first).toEqual({ items: page.images, total: 2, headCursor: "h" });
    expect(fetchMock).not.toHaveBeenCalled();
    expect(document.getElementById(INLINE_FIRST_PAGE_ID)).toBeNull();
    // A refresh or Retry asks the API.
    const again = await fetchLibraryPage("", 0, 50, new AbortController().signal);
    expect(again.total).toBe(99);
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("is ignored for another page size, another origin, filters or junk", () => {
    inline(page);
    expect(takeInlineFirstPage("", 20)).toBeNull();
    inline(page);
    expect(takeInlineFirstPage("https://api.example", 50)).toBeNull();
    expect(document.getElementById(INLINE_FIRST_PAGE_ID)).not.toBeNull(); // left for a same-origin picker
    document.getElementById(INLINE_FIRST_PAGE_ID)?.remove();
    inline(page);
    expect(takeInlineFirstPage("", 50, { filters: { pipeline: "x" } })).toBeNull();
    document.getElementById(INLINE_FIRST_PAGE_ID)?.remove();
    inline("not a page");
    expect(takeInlineFirstPage("", 50)).toBeNull();
  });
});

describe("cell thumbnails", () => {
  it("offer the 200 px and 400 px squares and never the original", () => {
    const cells = image(1, { cell_thumbnail_url: "/t/a/cell/1.jpg", cell_thumbnail_url_2x: "/t/b/cell2x/1.jpg" });
    expect(thumbSource(cells)).toBe("/t/a/cell/1.jpg");
    expect(thumbSrcSet(cells)).toBe("/t/a/cell/1.jpg 200w, /t/b/cell2x/1.jpg 400w");
    expect(thumbSource(image(2))).toBe("/t/s/thumb/2.jpg");
    expect(thumbSrcSet(image(2))).toBeUndefined();
    expect(thumbSource(image(3, { thumbnail_url: null }))).toBe("/full/3.png");
  });
});
