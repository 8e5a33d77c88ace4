// @vitest-environment jsdom
/**
 * The picker as a user meets it, in jsdom: what is on screen and in the accessibility tree after
 * outages, inserts, resizes and key presses. The API is an in-memory fake with the real contract
 * (src/test/fakeLibrary.ts); images "load" or "fail" when a test fires their events.
 */
import { act, cleanup, configure, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fakeLibrary, type FakeLibrary } from "../test/fakeLibrary";
import { resizeAll } from "../test/setup";
import { INLINE_FIRST_PAGE_ID } from "./api";
import { ImagePicker, type ImagePickerProps } from "./ImagePicker";
import { SAVE_INTERVAL_MS } from "./useScrollAnchor";

// As the demo runs in development: effects mount, unmount and mount again.
configure({ reactStrictMode: true });

let lib: FakeLibrary;
let online = true;

function setOnline(value: boolean) {
  online = value;
  lib.offline = !value;
}

beforeEach(() => {
  lib = fakeLibrary(1000);
  online = true;
  Object.defineProperty(window.navigator, "onLine", { configurable: true, get: () => online });
  vi.stubGlobal("fetch", (input: RequestInfo | URL) => lib.fetch(input));
  sessionStorage.clear();
  resizeAll(800, 600); // 5 columns of 160 px, 3.75 rows on screen
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function renderPicker(props: Partial<ImagePickerProps> = {}) {
  const onSelect = vi.fn();
  const utils = render(<ImagePicker scrollKey={null} onSelect={onSelect} {...props} />);
  return { ...utils, onSelect };
}

const grid = () => screen.getByRole("grid");
const cell = (index: number) => document.querySelector<HTMLElement>(`[role=gridcell][data-index="${index}"]`);

/** Scroll the grid like a user: set scrollTop and fire the event the browser would. */
async function scrollTo(top: number) {
  await act(async () => {
    grid().scrollTop = top;
    fireEvent.scroll(grid());
  });
}

/** After the picker sets scrollTop itself, the browser fires a scroll event; jsdom does not. */
async function settleScroll() {
  await act(async () => {
    fireEvent.scroll(grid());
  });
}

async function loaded(index: number) {
  await waitFor(() => expect(cell(index)?.getAttribute("aria-label") ?? "").toMatch(/^Image \d+/));
}

describe("first screen", () => {
  afterEach(() => {
    document.getElementById(INLINE_FIRST_PAGE_ID)?.remove();
    vi.restoreAllMocks();
  });

  it("with the first page inline, the first commit already shows its cells at the grid's measured size", async () => {
    const page = (await (await lib.fetch("/api/library/images?limit=50&offset=0")).json()) as unknown;
    lib.requests.length = 0;
    const element = document.createElement("script");
    element.id = INLINE_FIRST_PAGE_ID;
    element.type = "application/json";
    element.textContent = JSON.stringify(page);
    document.head.append(element);
    // No ResizeObserver report at all: the size comes from measuring the grid's box before the Grid mounts.
    (globalThis as { __testSize?: unknown }).__testSize = undefined;
    vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockImplementation(function (this: HTMLElement) {
      const [width, height] = this.hasAttribute("data-picker-grid") ? [964, 730] : [0, 0];
      return { width, height, top: 0, left: 0, right: width, bottom: height, x: 0, y: 0, toJSON: () => ({}) };
    });
    renderPicker();
    // Right after the first commit (before any promise, effect round trip or resize callback):
    // 964 px wide gives 6 columns of 160.66 px (730 px, the height, would give 4), 5 rows on screen.
    const rows = () => [...document.querySelectorAll("[role=row]")].map((row) => row.children.length);
    expect(rows()).toEqual([6, 6, 6, 6, 6]);
    expect(cell(0)?.getAttribute("aria-label")).toMatch(/^Image 1000,/);
    expect(cell(0)?.style.width).toBe("160.66px");
    expect(cell(29)?.querySelector("img")?.getAttribute("loading")).toBe("eager");
    expect(cell(30)).toBeNull(); // the overscan row comes after the first paint
    expect(document.querySelector("[data-picker-grid][aria-hidden]")).toBeNull(); // the placeholder is gone
    await act(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0))));
    // Then the overscan row (lazy); the Grid's own mount-time resize report changed nothing.
    expect(rows()).toEqual([6, 6, 6, 6, 6, 6]);
    expect(cell(30)?.querySelector("img")?.getAttribute("loading")).toBe("lazy");
    // Page 0 came from the HTML; only the next page is asked for, bounded by its head cursor.
    await waitFor(() => expect(lib.requests.length).toBeGreaterThan(0));
    expect(lib.requests.map((u) => [u.searchParams.get("offset"), u.searchParams.get("until")])).toEqual([
      ["50", "1000"],
    ]);
  });
});

describe("recovery", () => {
  it("first load offline says so, then loads by itself when the connection returns", async () => {
    setOnline(false);
    renderPicker();
    const alert = await screen.findByRole("alert");
    expect((alert)?.textContent).toContain("You're offline");
    setOnline(true);
    await act(async () => {
      window.dispatchEvent(new Event("online"));
    });
    await loaded(0);
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("server trouble reads as such and recovers when the tab becomes visible again", async () => {
    lib.failWith = { status: 503 };
    renderPicker();
    const alert = await screen.findByRole("alert", {}, { timeout: 8000 });
    expect((alert)?.textContent).toContain("The library isn't responding");
    expect((alert)?.textContent).toContain("database is down");
    lib.failWith = null;
    await act(async () => {
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await loaded(0);
  }, 15_000);

  it("a failing thumbnail says 'Preview unavailable' and never falls back to the original", async () => {
    renderPicker();
    await loaded(0);
    const img = () => cell(0)!.querySelector("img")!;
    fireEvent.error(img());
    await waitFor(() => expect(cell(0)!.querySelector("img")).not.toBeNull(), { timeout: 2000 });
    expect(img().getAttribute("src")).toBe("/t/1000.jpg");
    fireEvent.error(img());
    await within(cell(0)!).findByText("Preview unavailable");
    expect((cell(0))?.getAttribute("aria-label")).toMatch(/preview unavailable$/);
    expect(document.querySelector('img[src^="/full/"]')).toBeNull();
    // Back online: the tile tries its thumbnail again at once (no session memory of the failure).
    await act(async () => {
      window.dispatchEvent(new Event("online"));
    });
    expect(img().getAttribute("src")).toBe("/t/1000.jpg");
    fireEvent.load(img());
    await waitFor(() => expect(within(cell(0)!).queryByText("Preview unavailable")).toBeNull());
  });

  it("a thumbnail-only outage: a Retry bar, and the first thumbnail back makes the others try at once", async () => {
    const user = userEvent.setup();
    renderPicker();
    await loaded(1);
    const img = (index: number) => cell(index)!.querySelector("img");
    const fail = async (index: number, times: number) => {
      for (let n = 0; n < times; n++) {
        await waitFor(() => expect(img(index)).not.toBeNull(), { timeout: 5000 });
        fireEvent.error(img(index)!);
      }
    };
    await fail(0, 2); // next try in 1.5 s
    await fail(1, 3); // next try in 4 s
    await within(cell(1)!).findByText("Preview unavailable");
    // No page failed, yet the bar offers Retry for the previews.
    const bar = await screen.findByRole("alert");
    expect(bar.textContent).toContain("Some previews could not be loaded");
    expect(within(bar).getByRole("button", { name: "Retry" })).toBeTruthy();
    expect(img(1)).toBeNull();
    await waitFor(() => expect(img(0)).not.toBeNull(), { timeout: 3000 });
    fireEvent.load(img(0)!); // the thumbnail server answers again
    expect(img(1)).not.toBeNull(); // at once, not after its 4 s
    fireEvent.load(img(1)!);
    await waitFor(() => expect(screen.queryByRole("alert")).toBeNull());

    // Retry on the bar also tries a failing preview at once.
    await fail(2, 2);
    const again = await screen.findByRole("alert");
    await user.click(within(again).getByRole("button", { name: "Retry" }));
    expect(img(2)).not.toBeNull();
    fireEvent.load(img(2)!);
    await waitFor(() => expect(screen.queryByRole("alert")).toBeNull());
  }, 15_000);

  it("Retry clears everything failed, pages and thumbnails, and its keys are its own", async () => {
    const user = userEvent.setup();
    lib.failWhen = (url) => url.searchParams.get("offset") === "50";
    lib.failWith = { status: 400 }; // not retryable: fails at once
    renderPicker();
    await loaded(0);
    await scrollTo(160 * 8); // items 40..59: page 0 shown, page 1 failed
    const bar = await screen.findByRole("alert");
    expect(bar.textContent).toContain("could not be loaded");
    // A thumbnail that gave up for now (next try in 1.5 s).
    fireEvent.error(cell(45)!.querySelector("img")!);
    await waitFor(() => expect(cell(45)!.querySelector("img")).not.toBeNull(), { timeout: 2000 });
    fireEvent.error(cell(45)!.querySelector("img")!);
    await within(cell(45)!).findByText("Preview unavailable");
    expect(cell(45)!.querySelector("img")).toBeNull();

    const retry = within(bar).getByRole("button", { name: "Retry" });
    retry.focus();
    await user.keyboard("{ArrowDown}");
    expect(document.activeElement).toBe(retry);
    lib.failWith = null;
    const before = lib.requests.length;
    await user.keyboard("{Enter}");
    expect(cell(45)!.querySelector("img")).not.toBeNull(); // at once, not after its backoff
    await waitFor(() => expect(screen.queryByRole("alert")).toBeNull());
    expect(lib.requests.slice(before).map((u) => u.searchParams.get("offset"))).toContain("50");
    await loaded(55);
    expect(document.querySelector("[aria-selected=true]")).toBeNull(); // Enter retried, it selected nothing
  });
});

describe("reopening at a saved place", () => {
  it("the top the grid renders before it scrolls there loads no thumbnails and no pages", async () => {
    // Every thumbnail an <img> was ever given (an <img> with src starts its download).
    const sources = new Set<string>();
    const watch = new MutationObserver(() => {
      for (const img of document.querySelectorAll("img")) sources.add(img.getAttribute("src") ?? "");
    });
    watch.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["src"] });
    sessionStorage.setItem("restore-test", "480");
    renderPicker({ scrollKey: "restore-test" });
    await waitFor(() => expect(grid().scrollTop).toBe((480 / 5) * 160));
    await settleScroll(); // the browser's scroll event for the anchor's scrollTop
    await loaded(480);
    await waitFor(() => expect(cell(480)!.querySelector("img")).not.toBeNull());
    watch.disconnect();
    // Item i is image 1000 - i: nothing from the top of the library (items 0..469).
    const top = [...sources].filter((src) => Number(/\/t\/(\d+)\.jpg/.exec(src)?.[1]) > 1000 - 470);
    expect(top).toEqual([]);
    expect(sources).toContain("/t/520.jpg"); // item 480
    const offsets = lib.requests.map((u) => u.searchParams.get("offset"));
    expect(offsets).not.toContain("50");
    expect(offsets).toContain("450");
  });
});

describe("a fast scroll", () => {
  it("shows flat placeholders (no <img>, same names) and, once it stops, the tiles ask for their thumbnails at once", async () => {
    renderPicker();
    await loaded(0);
    await scrollTo(160 * 8); // a rest before: the first event of a scroll has no speed
    await loaded(60); // rows 8-12 on screen, pages 0 and 1 loaded
    // 160 px per event, 10 ms apart (16 px/ms) on the picker's clock, whatever this machine's pace.
    let now = performance.now();
    const clock = vi.spyOn(performance, "now").mockImplementation(() => now);
    try {
      for (let row = 9; row <= 12; row++) {
        now += 10;
        await scrollTo(160 * row);
      }
      const seek = cell(60)!; // the top-left cell now
      expect(seek.classList).toContain("tp-cell-seek");
      expect(seek.querySelector("img")).toBeNull();
      expect(seek.getAttribute("aria-label")).toMatch(/^Image \d+/);
    } finally {
      clock.mockRestore();
    }
    // Stopped: the tile is back, and its <img> already has its source (no THUMB_DEFER_MS wait).
    await waitFor(() => expect(cell(60)!.querySelector("img")).not.toBeNull(), { interval: 5 });
    expect(cell(60)!.classList).not.toContain("tp-cell-seek");
    expect(cell(60)!.querySelector("img")!.getAttribute("src")).not.toBeNull();
  });
});

describe("saving the place", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
  });

  it("a fast scroll writes sessionStorage at most every SAVE_INTERVAL_MS, and at once when hidden or closed", async () => {
    const { unmount } = renderPicker({ scrollKey: "save-test" });
    await loaded(0);
    const writes = vi.spyOn(Storage.prototype, "setItem");
    const saved = () => sessionStorage.getItem("save-test");
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] }); // the test's pace is not the machine's
    try {
      for (let row = 1; row <= 20; row++) {
        act(() => {
          grid().scrollTop = 160 * row; // 20 scroll events, 10 ms apart
          fireEvent.scroll(grid());
        });
        act(() => vi.advanceTimersByTime(10));
      }
      // One write so far (at 250 ms from the first event), not 20.
      expect(writes.mock.calls.filter(([key]) => key === "save-test").length).toBeLessThanOrEqual(1);
      act(() => vi.advanceTimersByTime(SAVE_INTERVAL_MS));
      expect(saved()).toBe("100"); // row 20's first item
    } finally {
      vi.useRealTimers();
    }
    // Hidden (tab switched, page frozen or discarded next): the place is written at once.
    await scrollTo(160 * 30);
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    fireEvent(document, new Event("visibilitychange"));
    expect(saved()).toBe("150");
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
    await scrollTo(160 * 40);
    fireEvent(window, new Event("pagehide"));
    expect(saved()).toBe("200");
    // Closed right after a scroll: reopening finds the last place.
    await scrollTo(160 * 50);
    unmount();
    expect(saved()).toBe("250");
  });
});

describe("a stable list", () => {
  it("images added while open never show twice, and come in at the top on request, keeping the place", async () => {
    const user = userEvent.setup();
    renderPicker();
    await loaded(0);
    lib.insert(7);
    await scrollTo(160 * 19); // rows 19.. (items 95..) need page 1 and 2
    await loaded(102);
    const ids = [97, 98, 99, 100, 101, 102].map((i) => cell(i)!.getAttribute("aria-label")!.split(",")[0]);
    expect(new Set(ids).size).toBe(6);
    expect(lib.requests.filter((u) => u.searchParams.get("offset") === "50")[0]!.searchParams.get("until")).toBe(
      "1000",
    );

    await act(async () => {
      window.dispatchEvent(new Event("focus")); // also polled every 20 s
    });
    await waitFor(() => expect((screen.getByRole("status"))?.textContent).toContain("7 new images"));
    const topLeft = cell(95)!.getAttribute("aria-label");
    await user.click(screen.getByRole("button", { name: "Show 7 new images" }));
    await settleScroll();
    // The button left with the notice; focus stayed in the grid, not on <body>.
    expect(grid().contains(document.activeElement)).toBe(true);
    // The image that was top-left is still in the top row, seven places on (a row further down).
    expect(cell(102)!.getAttribute("aria-label")).toBe(topLeft);
    expect(grid().scrollTop).toBeLessThanOrEqual(Math.floor(102 / 5) * 160);
    expect(grid().scrollTop + 160).toBeGreaterThan(Math.floor(102 / 5) * 160);
    await scrollTo(0);
    expect(cell(0)!.getAttribute("aria-label")).toMatch(/^Image 1007,/);
    expect(cell(7)!.getAttribute("aria-label")).toMatch(/^Image 1000,/);
    expect(screen.queryByRole("button", { name: /new image/ })).toBeNull();
  });

  it("images deleted above the place while open: the reloaded pages show the rest, and the image at the top stays there", async () => {
    renderPicker();
    await loaded(0);
    await scrollTo(160 * 25); // item 125 at the top-left: pages 0..3 are loaded
    await loaded(140);
    await waitFor(() => expect(lib.requests.some((u) => u.searchParams.get("offset") === "150")).toBe(true));
    expect(lib.requests.some((u) => u.searchParams.get("offset") === "200")).toBe(false);
    lib.images.splice(10, 5); // five images near the top are deleted
    await scrollTo(160 * 30); // item 150 (image 850) at the top; page 4 is needed and answers a smaller total
    await waitFor(() => expect(lib.requests.filter((u) => u.searchParams.get("offset") === "150")).toHaveLength(2));
    await settleScroll();
    const at = [...document.querySelectorAll("[role=gridcell]")].find((c) =>
      c.getAttribute("aria-label")?.startsWith("Image 850,"),
    ) as HTMLElement | undefined;
    expect(at).toBeDefined();
    expect(Number(at!.dataset.index)).toBe(145); // five places up: the deleted ones are gone
    const rowTop = Math.floor(145 / 5) * 160;
    expect(rowTop).toBeLessThanOrEqual(grid().scrollTop);
    expect(rowTop + 160).toBeGreaterThan(grid().scrollTop); // still in the top row: the place followed it
    expect(cell(144)!.getAttribute("aria-label")).toMatch(/^Image 851,/); // nothing skipped before it
  });

  it("new images shown from the top of the list are in view (the place is kept only deeper in)", async () => {
    const user = userEvent.setup();
    renderPicker();
    await loaded(0);
    lib.insert(7); // more than a row of 5
    await act(async () => {
      window.dispatchEvent(new Event("focus"));
    });
    await user.click(await screen.findByRole("button", { name: "Show 7 new images" }));
    await settleScroll();
    expect(grid().scrollTop).toBe(0);
    expect(cell(0)!.getAttribute("aria-label")).toMatch(/^Image 1007,/);
    expect(cell(7)!.getAttribute("aria-label")).toMatch(/^Image 1000,/);
  });

  it("too many new images to add in place (a capped count): announced as such, shown by reloading from the top", async () => {
    const user = userEvent.setup();
    lib.newerCap = 5;
    renderPicker();
    await loaded(0);
    await scrollTo(160 * 30);
    lib.insert(8);
    await act(async () => {
      window.dispatchEvent(new Event("focus"));
    });
    await user.click(await screen.findByRole("button", { name: "Show 5+ new images" }));
    await waitFor(() => expect(cell(0)?.getAttribute("aria-label") ?? "").toMatch(/^Image 1008,/));
    expect(grid().scrollTop).toBe(0);
  });
});

describe("an empty library", () => {
  it("shows the first images generated while it is open, without a click (focus here; also the 20 s poll)", async () => {
    lib = fakeLibrary(0);
    renderPicker();
    await screen.findByText("Your library is empty.");
    lib.insert(3);
    await act(async () => {
      window.dispatchEvent(new Event("focus"));
    });
    await loaded(0);
    expect(cell(0)!.getAttribute("aria-label")).toMatch(/^Image 3,/);
    expect(screen.queryByText("Your library is empty.")).toBeNull();
  });

  it("emptied while open (every image deleted), it still shows the next image generated by itself", async () => {
    // Before: the poll found it (newer_than the old head) but its notice sat behind the empty panel.
    renderPicker();
    await loaded(0);
    lib.images = [];
    await scrollTo(160 * 100); // a page asked now answers total 0
    await screen.findByText("Your library is empty.");
    lib.insert(2);
    await act(async () => {
      window.dispatchEvent(new Event("focus"));
    });
    await loaded(1);
    expect(cell(0)!.getAttribute("aria-label")).toMatch(/^Image 2,/);
    expect(cell(1)!.getAttribute("aria-label")).toMatch(/^Image 1,/);
    expect(cell(2)).toBeNull();
    expect(screen.queryByText("Your library is empty.")).toBeNull();
  });
});

describe("place kept through resizes", () => {
  it("a drag-resize narrower and back in many small steps keeps the top-left item in view", async () => {
    renderPicker();
    await loaded(0);
    await scrollTo(160 * 25 + 37); // row 25 of 5 columns: item 125 at the top-left
    const anchor = 125;
    const startTop = grid().scrollTop;
    const widths = [...Array.from({ length: 40 }, (_, i) => 800 - 7 * i), ...Array.from({ length: 41 }, (_, i) => 520 + 7 * i)];
    for (const width of widths) {
      await act(async () => resizeAll(width, 600));
      await settleScroll();
      const cols = Math.min(10, Math.max(2, Math.floor(width / 160)));
      const size = Math.floor((width / cols) * 100) / 100;
      const rowTop = Math.floor(anchor / cols) * size;
      expect(rowTop, `width ${width}`).toBeLessThanOrEqual(grid().scrollTop + 1e-6);
      expect(rowTop + size, `width ${width}`).toBeGreaterThan(grid().scrollTop);
    }
    await act(async () => resizeAll(800, 600));
    await settleScroll();
    expect(grid().scrollTop).toBeCloseTo(startTop, 6);
  }, 20_000); // 81 resizes: 4.5-5.1 s on a loaded 2-core machine, past the 5 s default
});

describe("selection and keyboard", () => {
  it("click selects and reports the full URL", async () => {
    const user = userEvent.setup();
    const { onSelect } = renderPicker();
    await loaded(2);
    await user.click(cell(2)!);
    expect(onSelect).toHaveBeenCalledWith("/full/998.jpg", expect.objectContaining({ id: 998 }));
    expect((cell(2))?.getAttribute("aria-selected")).toBe("true");
  });

  it("a focused cell that scrolls away leaves focus visible on the grid; an arrow brings it back", async () => {
    const user = userEvent.setup();
    renderPicker();
    await loaded(1);
    await user.click(cell(1)!);
    expect(document.activeElement).toBe(cell(1));
    await scrollTo(160 * 60);
    expect(cell(1)).toBeNull();
    expect(document.activeElement).toBe(grid());
    await user.keyboard("{ArrowDown}");
    await settleScroll();
    await waitFor(() => expect(document.activeElement).toBe(cell(6)));
  });
});
