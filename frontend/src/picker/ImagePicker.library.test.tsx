// @vitest-environment jsdom
/** The picker's embedding API: controlled selection, confirm, ranges, select all, ref, strings, theme, transport. */
import { act, cleanup, configure, fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { createRef, useState } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fakeLibrary, type FakeLibrary } from "../test/fakeLibrary";
import { resizeAll } from "../test/setup";
import { ImagePicker, type ImagePickerHandle, type ImagePickerProps } from "./ImagePicker";

// As the demo runs in development: effects mount, unmount and mount again.
configure({ reactStrictMode: true });

let lib: FakeLibrary;
beforeEach(() => {
  lib = fakeLibrary(300);
  vi.stubGlobal("fetch", vi.fn((input: RequestInfo | URL) => lib.fetch(input)));
  resizeAll(800, 600);
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const cell = (index: number) => document.querySelector<HTMLElement>(`[role=gridcell][data-index="${index}"]`)!;
const selectedIndices = () =>
  [...document.querySelectorAll<HTMLElement>("[role=gridcell][aria-selected=true]")].map((c) => Number(c.dataset.index));
async function loaded(index: number) {
  await waitFor(() => expect(cell(index)?.getAttribute("aria-label") ?? "").toMatch(/^Image \d+/));
}

describe("selection API", () => {
  it("controlled `selected`: the picker reports, the host decides", async () => {
    const user = userEvent.setup();
    const onSelectionChange = vi.fn();
    function Host() {
      const [selected, setSelected] = useState<string[]>(["/full/299.jpg"]);
      return (
        <ImagePicker
          scrollKey={null}
          selected={selected}
          onSelectionChange={(urls) => {
            onSelectionChange(urls);
            if (urls[0] !== "/full/297.jpg") setSelected(urls); // this host refuses image 297
          }}
        />
      );
    }
    render(<Host />);
    await loaded(3);
    expect(selectedIndices()).toEqual([1]);
    await user.click(cell(2));
    expect(onSelectionChange).toHaveBeenLastCalledWith(["/full/298.jpg"]);
    expect(selectedIndices()).toEqual([2]);
    await user.click(cell(3));
    expect(onSelectionChange).toHaveBeenLastCalledWith(["/full/297.jpg"]);
    expect(selectedIndices()).toEqual([2]); // refused: still the host's choice
  });

  it("defaultSelected, Shift-click ranges and Ctrl/Cmd+A in multi-select", async () => {
    const user = userEvent.setup();
    const onSelectionChange = vi.fn();
    render(
      <ImagePicker scrollKey={null} multiple defaultSelected={["/full/300.jpg"]} onSelectionChange={onSelectionChange} />,
    );
    await loaded(10);
    expect(selectedIndices()).toEqual([0]);
    await user.click(cell(2));
    await user.keyboard("{Shift>}");
    await user.click(cell(6));
    await user.keyboard("{/Shift}");
    expect(selectedIndices()).toEqual([0, 2, 3, 4, 5, 6]);
    // Shift+ArrowRight extends from the same anchor.
    await user.keyboard("{Shift>}{ArrowRight}{/Shift}");
    expect(selectedIndices()).toEqual([0, 2, 3, 4, 5, 6, 7]);
    await user.keyboard("{Control>}a{/Control}");
    const [urls] = onSelectionChange.mock.lastCall as [string[]];
    const pagesLoaded = new Set(lib.requests.map((u) => u.searchParams.get("offset"))).size;
    expect(urls.length).toBe(pagesLoaded * 50); // every image loaded so far
    expect(selectedIndices().length).toBeGreaterThan(20); // every rendered cell
  });

  it("onConfirm on double-click and on Enter over a selected cell", async () => {
    const user = userEvent.setup();
    const onConfirm = vi.fn();
    render(<ImagePicker scrollKey={null} onConfirm={onConfirm} />);
    await loaded(4);
    await user.dblClick(cell(4));
    expect(onConfirm).toHaveBeenCalledWith(["/full/296.jpg"], [expect.objectContaining({ id: 296 })]);
    onConfirm.mockClear();
    await user.click(cell(1));
    expect(onConfirm).not.toHaveBeenCalled();
    await user.keyboard("{Enter}"); // cell 1 is selected and focused
    expect(onConfirm).toHaveBeenCalledWith(["/full/299.jpg"], expect.anything());
  });
});

describe("host integration", () => {
  it("ref: scrollToImage brings a loaded image into view; refresh reloads from the top", async () => {
    const ref = createRef<ImagePickerHandle>();
    render(<ImagePicker scrollKey={null} ref={ref} />);
    await loaded(0);
    expect(ref.current!.scrollToImage(99_999)).toBe(false);
    await act(async () => {
      expect(ref.current!.scrollToImage(260)).toBe(true); // index 40, row 8
    });
    const grid = screen.getByRole("grid");
    expect(grid.scrollTop).toBeGreaterThan(0);
    lib.insert(2);
    const before = lib.requests.length;
    await act(async () => ref.current!.refresh());
    await waitFor(() => expect(cell(0).getAttribute("aria-label")).toMatch(/^Image 302,/));
    expect(lib.requests.length).toBeGreaterThan(before);
  });

  it("translatable strings, theme attribute, headers and filters on every request", async () => {
    lib.failWhen = (url) => url.searchParams.get("offset") === "50";
    lib.failWith = { status: 400 };
    render(
      <ImagePicker
        scrollKey={null}
        theme="dark"
        headers={{ Authorization: "Bearer t" }}
        filters={{ pipeline: "p1", step: "upscale" }}
        strings={{ gridLabel: "Bildbibliothek", retry: "Erneut versuchen", failedPages: () => "Fehler" }}
      />,
    );
    await loaded(0);
    expect(screen.getByRole("grid").getAttribute("aria-label")).toBe("Bildbibliothek");
    expect(document.querySelector(".tp-picker")!.getAttribute("data-theme")).toBe("dark");
    await act(async () => {
      const grid = screen.getByRole("grid");
      grid.scrollTop = 160 * 10;
      fireEvent.scroll(grid);
    });
    expect((await screen.findByRole("alert")).textContent).toContain("Fehler");
    expect(screen.getByRole("button", { name: "Erneut versuchen" })).toBeTruthy();
    const calls = (fetch as unknown as { mock: { calls: [string, RequestInit][] } }).mock.calls;
    for (const [url, init] of calls) {
      expect(url).toContain("pipeline_id=p1");
      expect(url).toContain("step=upscale");
      expect((init.headers as Record<string, string>).Authorization).toBe("Bearer t");
    }
  });

  it("a host's fetchNewer that throws or answers no images: no uncaught error, nothing announced", async () => {
    const fetchPage = vi.fn(async (page: number, size: number) => ({
      items: lib.images.slice(page * size, (page + 1) * size),
      total: lib.images.length,
      headCursor: "H",
    }));
    const errors: unknown[] = [];
    const onError = (e: ErrorEvent) => errors.push(e.error ?? e.message);
    window.addEventListener("error", onError);
    let call = 0;
    const fetchNewer = vi.fn((() => {
      call += 1;
      if (call === 1) throw new TypeError("host bug");
      return Promise.resolve({ count: 3, images: undefined, headCursor: "N", capped: false });
    }) as unknown as NonNullable<ImagePickerProps["fetchNewer"]>);
    try {
      render(<ImagePicker scrollKey={null} fetchPage={fetchPage} fetchNewer={fetchNewer} />);
      await loaded(0);
      await act(async () => {
        window.dispatchEvent(new Event("focus"));
      });
      await act(async () => {
        window.dispatchEvent(new Event("focus"));
      });
      expect(fetchNewer).toHaveBeenCalledTimes(2);
      expect(errors).toEqual([]);
      expect(screen.queryByText(/new image/)).toBeNull();
    } finally {
      window.removeEventListener("error", onError);
    }
  });

  it("a host's fetchPage that answers a short page mid-list: its rows show, the rest say Retrying, then fill in", async () => {
    let shortAnswers = 2;
    const fetchPage = vi.fn(async (page: number, size: number) => {
      let items = lib.images.slice(page * size, (page + 1) * size);
      if (page === 1 && shortAnswers > 0) {
        shortAnswers -= 1;
        items = items.slice(0, 20);
      }
      return { items, total: lib.images.length };
    });
    render(<ImagePicker scrollKey={null} fetchPage={fetchPage} />);
    await loaded(0);
    const grid = screen.getByRole("grid");
    await act(async () => {
      grid.scrollTop = 13 * 160;
      fireEvent.scroll(grid);
    });
    await waitFor(() => expect(cell(75)?.getAttribute("aria-label")).toBe("Retrying…"));
    expect(cell(69).getAttribute("aria-label")).toContain(`Image ${lib.images[69]!.id}`); // its rows show meanwhile
    await waitFor(() => expect(cell(75)?.getAttribute("aria-label") ?? "").toMatch(/^Image \d+/), { timeout: 5000 });
    expect(fetchPage.mock.calls.filter(([page]) => page === 1)).toHaveLength(3);
    expect(cell(75).getAttribute("aria-label")).toContain(`Image ${lib.images[75]!.id}`);
  });

  it("fetchPage replaces the transport", async () => {
    const fetchPage = vi.fn(async (page: number, size: number) => ({
      items: lib.images.slice(page * size, (page + 1) * size),
      total: lib.images.length,
    }));
    render(<ImagePicker scrollKey={null} fetchPage={fetchPage} />);
    await loaded(0);
    expect(fetchPage).toHaveBeenCalled();
    expect(lib.requests).toHaveLength(0);
  });
});
