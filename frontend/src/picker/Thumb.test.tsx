// @vitest-environment jsdom
/**
 * A failing thumbnail on its own, on fake timers: the backoff, a rate that never stops (so an
 * outage of any length ends by itself), and the "it came back" signal the picker spreads.
 */
import { act, cleanup, fireEvent, render } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { THUMB_DEFER_MS, THUMB_RETRY_DELAYS_MS, THUMB_TIMEOUT_MS, Thumb, UNAVAILABLE_TEXT } from "./Thumb";
import type { LibraryImage } from "./types";

const image = {
  id: 7,
  url: "/full/7.png",
  thumbnail_url: "/t/7.jpg",
  created_at: "2026-12-01T00:00:00Z",
} as LibraryImage;

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

function renderThumb(recovery = 0) {
  const onUnavailable = vi.fn();
  const onRecovered = vi.fn();
  const props = { image, size: 160, eager: false, onUnavailable, onRecovered };
  const utils = render(<Thumb {...props} recovery={recovery} />);
  const img = () => utils.container.querySelector("img");
  const rerender = (next: number) => utils.rerender(<Thumb {...props} recovery={next} />);
  return { ...utils, img, rerender, onUnavailable, onRecovered };
}

async function advance(ms: number) {
  await act(async () => {
    vi.advanceTimersByTime(ms);
  });
}

describe("a failing thumbnail", () => {
  it("keeps trying at the last delay past its backoff list, and recovers after a long outage", async () => {
    const { img, container, onRecovered, onUnavailable } = renderThumb();
    const delays = [...THUMB_RETRY_DELAYS_MS, ...Array(4).fill(THUMB_RETRY_DELAYS_MS.at(-1))];
    for (const delay of delays) {
      fireEvent.error(img()!);
      expect(img()).toBeNull(); // waiting: no request meanwhile
      await advance(delay - 1);
      expect(img()).toBeNull();
      await advance(1);
      expect(img()!.getAttribute("src")).toBe("/t/7.jpg"); // a fresh attempt
    }
    expect(container.textContent).toContain(UNAVAILABLE_TEXT);
    expect(onUnavailable).toHaveBeenLastCalledWith(7, true);
    expect(onRecovered).not.toHaveBeenCalled();
    fireEvent.load(img()!); // the server answers again, two minutes and more in
    expect(onRecovered).toHaveBeenCalledTimes(1);
    expect(container.textContent).not.toContain(UNAVAILABLE_TEXT);
    expect(onUnavailable).toHaveBeenLastCalledWith(7, false);
  });

  it("a first load is no recovery; a recovery signal tries at once; unmounting withdraws the tile", async () => {
    const { img, rerender, unmount, onRecovered, onUnavailable } = renderThumb();
    fireEvent.load(img()!);
    expect(onRecovered).not.toHaveBeenCalled();
    fireEvent.error(img()!);
    await advance(THUMB_RETRY_DELAYS_MS[0]!);
    fireEvent.error(img()!);
    expect(img()).toBeNull();
    expect(onUnavailable).toHaveBeenLastCalledWith(7, true);
    rerender(1); // PickerState.recover(): at once, not after 1.5 s
    expect(img()).not.toBeNull();
    fireEvent.error(img()!);
    await advance(THUMB_RETRY_DELAYS_MS[0]!);
    expect(img()).not.toBeNull();
    unmount();
    expect(onUnavailable).toHaveBeenLastCalledWith(7, false);
  });
});

describe("a tile passed over in a fast scroll", () => {
  it("asks for its thumbnail only after THUMB_DEFER_MS mounted: one unmounted sooner starts no download", async () => {
    const passed = render(<Thumb image={{ ...image, id: 8, thumbnail_url: "/t/8.jpg" } as LibraryImage} size={160} eager={false} recovery={0} />);
    const el = passed.container.querySelector("img")!;
    expect(el.getAttribute("src")).toBeNull();
    await advance(THUMB_DEFER_MS - 1);
    expect(el.getAttribute("src")).toBeNull();
    passed.unmount(); // scrolled away: never asked
    const stays = render(<Thumb image={{ ...image, id: 9, thumbnail_url: "/t/9.jpg" } as LibraryImage} size={160} eager={false} recovery={0} />);
    await advance(THUMB_DEFER_MS);
    const img = stays.container.querySelector("img")!;
    expect(img.getAttribute("src")).toBe("/t/9.jpg");
    fireEvent.load(img);
    stays.unmount();
    // Decoded before (scrolled back to) or on the first screen: at once.
    const back = render(<Thumb image={{ ...image, id: 9, thumbnail_url: "/t/9.jpg" } as LibraryImage} size={160} eager={false} recovery={0} />);
    expect(back.container.querySelector("img")!.getAttribute("src")).toBe("/t/9.jpg");
    const first = render(<Thumb image={{ ...image, id: 10, thumbnail_url: "/t/10.jpg" } as LibraryImage} size={160} eager={true} recovery={0} />);
    expect(first.container.querySelector("img")!.getAttribute("src")).toBe("/t/10.jpg");
    // Left in view when a fast scroll stopped (defer={false}): at once too.
    const settled = render(<Thumb image={{ ...image, id: 11, thumbnail_url: "/t/11.jpg" } as LibraryImage} size={160} eager={false} defer={false} recovery={0} />);
    expect(settled.container.querySelector("img")!.getAttribute("src")).toBe("/t/11.jpg");
  });
});

describe("a failing thumbnail in a hidden tab", () => {
  afterEach(() => {
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
  });

  it("does not retry while the tab is hidden; the recovery signal on showing it tries once", async () => {
    const { img, rerender } = renderThumb();
    fireEvent.error(img()!);
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    await advance(THUMB_RETRY_DELAYS_MS.reduce((a, b) => a + b, 0) * 3);
    expect(img()).toBeNull(); // no request in all that time
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
    rerender(1); // PickerState.recover() from the visibilitychange
    expect(img()!.getAttribute("src")).toBe("/t/7.jpg");
  });
});

describe("a stalled thumbnail", () => {
  it("neither loaded nor failed after THUMB_TIMEOUT_MS counts as a failure: cancelled, then tried again", async () => {
    const { img, container } = renderThumb();
    await advance(THUMB_TIMEOUT_MS - 1);
    expect(img()!.getAttribute("src")).toBe("/t/7.jpg");
    const stalled = img()!;
    await advance(1);
    expect(img()).toBeNull(); // waiting out the first backoff
    expect(stalled.getAttribute("src")).toBeNull(); // its download cancelled
    await advance(THUMB_RETRY_DELAYS_MS[0]!);
    expect(img()!.getAttribute("src")).toBe("/t/7.jpg");
    fireEvent.load(img()!);
    await advance(10 * THUMB_TIMEOUT_MS); // a loaded image is never timed out
    expect(img()).not.toBeNull();
    expect(container.textContent).not.toContain(UNAVAILABLE_TEXT);
  });
});

describe("what a tile may load", () => {
  it("only a web address: a legacy row's javascript: or file: url is never an <img> source", () => {
    for (const url of ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "junk", "/\\evil.test/x"]) {
      const legacy = { ...image, url, thumbnail_url: null } as unknown as LibraryImage;
      const { container, unmount } = render(<Thumb image={legacy} size={160} eager={false} recovery={0} />);
      expect(container.querySelector("img")).toBeNull();
      expect(container.textContent).toContain(UNAVAILABLE_TEXT);
      unmount();
    }
    for (const url of ["https://cdn.test/a.png", "/full/7.png"]) {
      const plain = { ...image, url, thumbnail_url: null } as unknown as LibraryImage;
      const { container, unmount } = render(<Thumb image={plain} size={160} eager={true} recovery={0} />);
      expect(container.querySelector("img")!.getAttribute("src")).toBe(url);
      unmount();
    }
  });
});
