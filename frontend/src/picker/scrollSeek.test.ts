import { describe, expect, it } from "vitest";
import { ScrollSeek, SEEK_ENTER_PX_PER_MS, SEEK_SETTLE_MS } from "./scrollSeek";

describe("ScrollSeek", () => {
  it("a scroll at reading speed never seeks", () => {
    const seek = new ScrollSeek();
    // A wheel notch of 100 px every 100 ms (1 px/ms), frames of 16 ms.
    for (let t = 0; t < 3000; t += 16) expect(seek.scrolled(Math.floor(t / 100) * 100, t)).toBe("normal");
  });

  it("a fast scroll seeks, and settles when it slows down or stops", () => {
    const seek = new ScrollSeek();
    let top = 0;
    let t = 0;
    expect(seek.scrolled(top, t)).toBe("normal"); // no speed from one event
    for (let i = 0; i < 10; i++) seek.scrolled((top += 600), (t += 100)); // 6 px/ms
    expect(seek.getMode()).toBe("seeking");
    // Events came 100 ms apart (a slow frame each): stopped after 1.5 gaps, not SEEK_SETTLE_MS.
    expect(seek.settleAfter()).toBe(150);
    expect(seek.idle(t + SEEK_SETTLE_MS, t)).toBe("seeking");
    expect(seek.idle(t + 149, t)).toBe("seeking");
    expect(seek.idle(t + 150, t)).toBe("settled");
    // The next scroll starts normal (the settled tiles stay).
    expect(seek.scrolled((top += 50), (t += 1000))).toBe("normal");

    // A fling slowing down under 1 px/ms settles while it still moves.
    for (let i = 0; i < 10; i++) seek.scrolled((top += 600), (t += 100));
    expect(seek.getMode()).toBe("seeking");
    seek.scrolled((top += 10), (t += 50));
    expect(seek.scrolled((top += 10), (t += 50))).toBe("settled");
    // Going on slowly: normal (the tiles mounted on settling already asked for their thumbnails).
    expect(seek.scrolled((top += 10), (t += 50))).toBe("normal");
  });

  it("events once per slow frame (6x CPU) still measure the speed", () => {
    const seek = new ScrollSeek();
    seek.scrolled(0, 0);
    seek.scrolled(400 * (SEEK_ENTER_PX_PER_MS + 1), 400);
    expect(seek.scrolled(800 * (SEEK_ENTER_PX_PER_MS + 1), 800)).toBe("seeking");
  });

  it("at 60 fps a stop is SEEK_SETTLE_MS without an event", () => {
    const seek = new ScrollSeek();
    let t = 0;
    for (let i = 0; i < 20; i++) seek.scrolled(i * 100, (t += 16)); // 6 px/ms
    expect(seek.getMode()).toBe("seeking");
    expect(seek.idle(t + SEEK_SETTLE_MS - 1, t)).toBe("seeking");
    expect(seek.idle(t + SEEK_SETTLE_MS, t)).toBe("settled");
  });

  it("a single jump (Ctrl+End, the anchor's scroll) after a rest, or a jump there and back, is not a fast scroll", () => {
    const seek = new ScrollSeek();
    seek.scrolled(0, 0);
    expect(seek.scrolled(100_000, 5000)).toBe("normal");
    expect(seek.scrolled(0, 5200)).toBe("normal");
  });
});
