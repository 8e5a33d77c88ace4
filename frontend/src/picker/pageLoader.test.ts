import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { defaultBackoff, FAILED_RETRY_MS, PAGE_TIMEOUT_MS, PageError, PageLoader, SETTLE_MS, WAKE_STALE_MS, type PageResult } from "./pageLoader";

type Call = { page: number; until: string | null; signal: AbortSignal; resolve: (r: PageResult<number>) => void; reject: (e: unknown) => void };

/** A fetchPage whose answers the test controls, recording every call. */
function controlledFetch() {
  const calls: Call[] = [];
  const fetchPage = vi.fn(
    (page: number, _size: number, signal: AbortSignal, until: string | null) =>
      new Promise<PageResult<number>>((resolve, reject) => calls.push({ page, until, signal, resolve, reject })),
  );
  return { calls, fetchPage };
}

const TOTAL = 230;
const pageOf = (page: number, size = 50): PageResult<number> => {
  const items: number[] = [];
  for (let i = page * size; i < Math.min(TOTAL, (page + 1) * size); i++) items.push(i);
  return { items, total: TOTAL };
};
const flush = () => new Promise<void>((r) => queueMicrotask(r)).then(() => undefined);

/** No request for `ms - 1` ms, then exactly one more; it answers page 0, which is then loaded. */
async function expectAskedAgainAfter(ms: number, calls: Call[], loader: PageLoader<number>): Promise<void> {
  const before = calls.length;
  vi.advanceTimersByTime(ms - 1);
  expect(calls).toHaveLength(before);
  vi.advanceTimersByTime(1);
  expect(calls).toHaveLength(before + 1);
  calls[before]!.resolve(pageOf(0));
  await flush();
  expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
}

describe("PageLoader", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("requests exactly the pages that overlap a range", () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(40, 160);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 3]);
  });

  it("never requests a page twice while it is in flight or loaded", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 99);
    loader.ensureRange(0, 99);
    loader.ensureRange(20, 60);
    expect(calls.map((c) => c.page)).toEqual([0, 1]);
    calls[0]!.resolve(pageOf(0));
    calls[1]!.resolve(pageOf(1));
    await flush();
    loader.ensureRange(0, 120);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2]);
    expect(fetchPage).toHaveBeenCalledTimes(3);
  });

  it("fills a sparse item array at the page's offset and learns the total", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    const seen: number[] = [];
    loader.subscribe(() => seen.push(loader.getSnapshot().items.length));
    loader.ensurePage(3);
    calls[0]!.resolve(pageOf(3));
    await flush();
    const snap = loader.getSnapshot();
    expect(snap.total).toBe(TOTAL);
    expect(snap.items.length).toBe(TOTAL);
    expect(snap.items[150]).toBe(150);
    expect(snap.items[199]).toBe(199);
    expect(snap.items[149]).toBeUndefined();
    expect(snap.items[200]).toBeUndefined();
    expect(snap.pages.get(3)).toEqual({ state: "loaded" });
    expect(seen.length).toBeGreaterThanOrEqual(2); // loading, then loaded
  });

  it("does not request pages past the known total", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve(pageOf(0));
    await flush();
    loader.ensureRange(0, 10_000);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 3, 4]); // 230 items -> pages 0..4
  });

  it("retries a failed page with growing backoff, then succeeds", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: (a) => 100 * 2 ** (a - 1) });
    loader.ensurePage(1);
    calls[0]!.reject(new Error("network down"));
    await flush();
    expect(loader.getSnapshot().pages.get(1)).toMatchObject({ state: "retrying", attempt: 1, error: "network down" });
    loader.ensurePage(1); // a retry is pending: asking again must not start another request
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(99);
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(2);
    calls[1]!.reject(new PageError("HTTP 503", true));
    await flush();
    vi.advanceTimersByTime(199);
    expect(calls).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(3);
    calls[2]!.resolve(pageOf(1));
    await flush();
    expect(loader.getSnapshot().pages.get(1)).toEqual({ state: "loaded" });
    expect(loader.getSnapshot().items[50]).toBe(50);
  });

  it("marks a page failed after maxAttempts instead of loading forever, until retry()", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 3, backoffMs: () => 10 });
    loader.ensurePage(0);
    for (let i = 0; i < 3; i++) {
      calls[i]!.reject(new PageError("HTTP 500", true));
      await flush();
      vi.advanceTimersByTime(10);
    }
    expect(calls).toHaveLength(3);
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "failed", attempt: 3, error: "HTTP 500" });
    vi.advanceTimersByTime(FAILED_RETRY_MS - 100);
    loader.ensureRange(0, 49); // scrolling over it again does not hammer the API
    expect(calls).toHaveLength(3);
    loader.retry();
    expect(calls).toHaveLength(4);
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loading", attempt: 1 });
  });

  it("fails at once on a non-retryable error", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 10 });
    loader.ensurePage(0);
    calls[0]!.reject(new PageError("HTTP 400: bad limit", false));
    await flush();
    vi.advanceTimersByTime(1000);
    expect(calls).toHaveLength(1);
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "failed", error: "HTTP 400: bad limit" });
  });

  it("a non-retryable failure (a proxy's 404 mid-deploy) is still asked again by itself, FAILED_RETRY_MS later", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 10 });
    loader.ensurePage(0);
    calls[0]!.reject(new PageError("HTTP 404", false));
    await flush();
    await expectAskedAgainAfter(FAILED_RETRY_MS, calls, loader);
  });

  it("retry(page) only retries that failed page", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 1 });
    loader.ensureRange(0, 149);
    calls.forEach((c) => c.reject(new Error("x")));
    await flush();
    loader.retry(2);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 2]);
  });

  it("stop() aborts in-flight pages and makes them requestable again", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 99);
    loader.stop();
    expect(calls.every((c) => c.signal.aborted)).toBe(true);
    calls[0]!.resolve(pageOf(0)); // a late answer is ignored
    await flush();
    expect(loader.getSnapshot().items[0]).toBeUndefined();
    loader.ensurePage(0); // stopped: no requests
    expect(calls).toHaveLength(2);
    loader.start();
    loader.ensurePage(0);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 0]);
  });

  it("stop() cancels pending retries", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 100 });
    loader.ensurePage(0);
    calls[0]!.reject(new Error("x"));
    await flush();
    loader.stop();
    vi.advanceTimersByTime(1000);
    expect(calls).toHaveLength(1);
  });

  it("reset() forgets loaded data", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve({ items: [], total: 0 });
    await flush();
    expect(loader.getSnapshot().total).toBe(0);
    loader.reset();
    expect(loader.getSnapshot().total).toBeNull();
    loader.ensurePage(0);
    expect(calls).toHaveLength(2);
  });

  it("keeps at most maxLoadedPages loaded: the farthest from view are forgotten and asked again on return", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxLoadedPages: 3 });
    for (let page = 0; page < 5; page++) {
      loader.ensureRange(page * 50, page * 50 + 10);
      calls.at(-1)!.resolve(pageOf(page));
      await flush();
    }
    const snap = loader.getSnapshot();
    expect([...snap.pages.keys()].sort()).toEqual([2, 3, 4]);
    expect(snap.items.filter((x) => x !== undefined)).toHaveLength(2 * 50 + 30); // pages 2, 3 and the short last one
    expect([snap.items[0], snap.items[99], snap.items[100]]).toEqual([undefined, undefined, 100]);
    expect(snap.total).toBe(TOTAL);
    loader.ensureRange(0, 10); // back at the top: page 0 again, and page 4 (now the farthest) goes
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 3, 4, 0]);
    calls.at(-1)!.resolve(pageOf(0));
    await flush();
    expect([...loader.getSnapshot().pages.keys()].sort()).toEqual([0, 2, 3]);
    expect(loader.getSnapshot().items[0]).toBe(0);
  });

  it("a page waiting for a retry that the view left is forgotten, and asked afresh on return", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 10);
    calls[0]!.resolve({ items: Array.from({ length: 50 }, (_, i) => i), total: 1000 });
    await flush();
    loader.ensureRange(500, 510);
    calls[1]!.reject(new PageError("HTTP 503", true));
    await flush();
    expect(loader.getSnapshot().pages.get(10)?.state).toBe("retrying");
    loader.ensureRange(900, 910);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.filter((c) => c.page === 10)).toHaveLength(1); // the retry never fired
    loader.ensureRange(500, 510);
    expect(calls.filter((c) => c.page === 10)).toHaveLength(2);
    expect(loader.getSnapshot().pages.get(10)).toEqual({ state: "loading", attempt: 1 });
  });

  /** Page 0 answered, then a slow listing while the user drags the scrollbar down page by page
   * to page 20 (nothing answers meanwhile), with two request slots. */
  const draggedDownWithTwoSlots = async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxInFlight: 2 });
    loader.ensureRange(0, 10);
    calls[0]!.resolve({ items: Array.from({ length: 50 }, (_, i) => i), total: 2000 });
    await flush();
    for (let page = 1; page <= 20; page++) loader.ensureRange(page * 50, page * 50 + 60);
    return { calls, loader };
  };

  it("at most maxInFlight listing requests at once; the rest wait, and the nearest to view goes first", async () => {
    const { calls, loader } = await draggedDownWithTwoSlots();
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2]); // was 0..21, a request per page passed over
    expect(calls.some((c) => c.signal.aborted)).toBe(false); // those out are left to answer
    expect(loader.getSnapshot().pages.get(21)).toEqual({ state: "loading", attempt: 1 }); // waiting, shown as loading
    expect(loader.getSnapshot().pages.has(10)).toBe(false); // passed over while waiting: forgotten
    calls[1]!.resolve({ items: Array.from({ length: 50 }, (_, i) => 50 + i), total: 2000 });
    await flush();
    expect(calls.at(-1)!.page).toBe(20); // a slot freed: the page in the middle of the view goes first
    calls[2]!.resolve({ items: Array.from({ length: 50 }, (_, i) => 100 + i), total: 2000 });
    await flush();
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 20, 21]);
    expect(loader.getSnapshot().items[100]).toBe(100); // a page passed over but answered is kept
    loader.ensureRange(500, 510); // back to a page forgotten on the way: asked once a slot frees
    expect(loader.getSnapshot().pages.get(10)).toEqual({ state: "loading", attempt: 1 });
    calls[3]!.resolve({ items: Array.from({ length: 50 }, (_, i) => 1000 + i), total: 2000 });
    await flush();
    expect(calls.at(-1)!.page).toBe(10);
    expect(calls).toHaveLength(new Set(calls.map((c) => c.page)).size); // none twice
  });

  it("once the view rests, requests for pages it left give way to the pages in view", async () => {
    const { calls, loader } = await draggedDownWithTwoSlots();
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2]); // pages 1 and 2 hold the slots, 20-21 wait
    await vi.advanceTimersByTimeAsync(SETTLE_MS);
    expect(calls[1]!.signal.aborted && calls[2]!.signal.aborted).toBe(true);
    expect(calls.slice(3).map((c) => c.page)).toEqual([20, 21]);
    expect([...loader.getSnapshot().pages.keys()].sort((a, b) => a - b)).toEqual([0, 19, 20, 21]); // 19, next to the view, waits
  });

  it("page 0 is never dropped before it answers: it sets the bound of every later page", () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 10);
    loader.ensureRange(5000, 5010); // a restored place far down, while page 0 is in flight
    expect(calls[0]!.signal.aborted).toBe(false);
  });

  it("scrolling page by page through the whole library fetches each page once", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    for (let top = 0; top < TOTAL; top += 7) {
      loader.ensureRange(Math.max(0, top - 20), top + 60);
      while (calls.some((c) => !("done" in c))) {
        for (const c of calls) {
          if (!("done" in c)) {
            Object.assign(c, { done: true });
            c.resolve(pageOf(c.page));
          }
        }
        await flush();
      }
    }
    const pages = calls.map((c) => c.page);
    expect(pages).toEqual([0, 1, 2, 3, 4]);
    expect(loader.getSnapshot().items.filter((x) => x !== undefined)).toHaveLength(TOTAL);
  });
});

describe("PageLoader recovery", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks a failed page again by itself, after Retry-After when the server sent one", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 1 });
    loader.ensurePage(0);
    calls[0]!.reject(new PageError("HTTP 503", true, 3000));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "failed", offline: false });
    vi.advanceTimersByTime(2999);
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(2);
    calls[1]!.reject(new PageError("HTTP 503", true));
    await flush();
    await expectAskedAgainAfter(FAILED_RETRY_MS, calls, loader);
  });

  it("a retry falling due while the tab is hidden waits for wake(), which asks once", async () => {
    const { calls, fetchPage } = controlledFetch();
    let visible = true;
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 2, backoffMs: () => 100, isVisible: () => visible });
    loader.ensureRange(0, 99);
    calls[0]!.resolve(pageOf(0));
    calls[1]!.reject(new PageError("HTTP 503", true));
    await flush();
    visible = false;
    vi.advanceTimersByTime(100); // the backoff falls due in a hidden tab: no request
    vi.advanceTimersByTime(10 * FAILED_RETRY_MS);
    expect(calls).toHaveLength(2);
    expect(loader.getSnapshot().pages.get(1)).toMatchObject({ state: "retrying" }); // what the user will see
    visible = true;
    loader.wake(); // visibilitychange
    expect(calls.map((c) => c.page)).toEqual([0, 1, 1]);
    calls[2]!.reject(new PageError("HTTP 503", true));
    await flush();
    vi.advanceTimersByTime(100);
    calls[3]!.reject(new PageError("HTTP 503", true));
    await flush();
    expect(loader.getSnapshot().pages.get(1)).toMatchObject({ state: "failed" });
    visible = false;
    vi.advanceTimersByTime(10 * FAILED_RETRY_MS); // nor is a failed page re-asked every 30 s while hidden
    expect(calls).toHaveLength(4);
  });

  it("wake() gives up a request out for more than WAKE_STALE_MS and asks again at once; a recent one is left", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0); // hangs: a request that went out on the connection that died
    vi.advanceTimersByTime(WAKE_STALE_MS + 1);
    loader.ensurePage(1);
    loader.wake(); // back online: page 0 would otherwise wait for its 15 s deadline
    expect(calls.map((c) => c.page)).toEqual([0, 1, 0]);
    expect([calls[0]!.signal.aborted, calls[1]!.signal.aborted]).toEqual([true, false]);
    calls[0]!.resolve(pageOf(0)); // the hung answer arriving late is ignored
    calls[2]!.resolve(pageOf(0));
    calls[1]!.resolve(pageOf(1));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
    loader.wake();
    expect(calls).toHaveLength(3); // nothing in flight, nothing failed: no request
    loader.ensurePage(2);
    vi.advanceTimersByTime(WAKE_STALE_MS + 1);
    loader.wake("visible"); // a tab shown again: a slow request is only slow, it keeps its progress
    expect(calls).toHaveLength(4);
    expect(calls[3]!.signal.aborted).toBe(false);
  });

  it("wake() asks again at once a retry in flight, however recent (its page already failed once)", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 100 });
    loader.ensurePage(0);
    vi.advanceTimersByTime(PAGE_TIMEOUT_MS); // hung: given up
    vi.advanceTimersByTime(100);
    expect(calls).toHaveLength(2); // the retry, out on a 30 s deadline
    vi.advanceTimersByTime(1000);
    loader.wake();
    expect(calls).toHaveLength(3);
    expect(calls[1]!.signal.aborted).toBe(true);
    calls[2]!.resolve(pageOf(0));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
  });

  it("a host's fetchPage that throws, returns no promise or resolves to no page fails that page, never throws or rejects unhandled", async () => {
    const answers: unknown[] = [undefined, { items: null, total: 3 }, { items: [1], total: "many" }, 42];
    let call = 0;
    const fetchPage = vi.fn((() => {
      call += 1;
      if (call === 1) throw new TypeError("host bug");
      return Promise.resolve(answers[call - 2]);
    }) as unknown as (page: number) => Promise<PageResult<number>>);
    const loader = new PageLoader<number>({ pageSize: 50, fetchPage, backoffMs: () => 10 });
    expect(() => loader.ensurePage(0)).not.toThrow();
    await flush();
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "retrying", error: "host bug" });
    for (let i = 0; i < answers.length; i++) {
      loader.retry();
      await flush();
      await flush();
      expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "failed", error: "Malformed library response" });
    }
    expect(loader.getSnapshot().total).toBeNull();
  });

  it("back online after a scroll offline: only the pages near the view are asked, through the request slots", async () => {
    const { calls, fetchPage } = controlledFetch();
    let online = true;
    const loader = new PageLoader({ pageSize: 10, fetchPage, maxInFlight: 1, isOnline: () => online });
    loader.ensureRange(0, 9);
    calls[0]!.resolve(pageOf(0, 10));
    await flush();
    online = false;
    for (let p = 1; p <= 8; p++) {
      loader.ensureRange(p * 10, p * 10 + 9); // scrolled on offline: each page fails and waits for online
      calls[p]!.reject(new TypeError("Failed to fetch"));
      await flush();
    }
    expect(loader.getSnapshot().pages.get(3)).toMatchObject({ state: "failed", offline: true });
    online = true;
    loader.wake("online");
    expect(calls.slice(9).map((c) => c.page)).toEqual([8]); // one slot: the page in view first
    expect(loader.getSnapshot().pages.get(7)).toMatchObject({ state: "loading" }); // waiting for the slot
    expect([1, 2, 3, 4, 5, 6].some((p) => loader.getSnapshot().pages.has(p))).toBe(false); // asked when reached
    calls[9]!.resolve(pageOf(8, 10));
    await flush();
    expect(calls.slice(10).map((c) => c.page)).toEqual([7]);
    loader.ensureRange(30, 39); // scrolled back: a forgotten page is asked again
    calls[10]!.resolve(pageOf(7, 10));
    await flush();
    expect(calls.slice(11).map((c) => c.page)).toEqual([3]);
  });

  it("waits out a Retry-After longer than its own backoff", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 100 });
    loader.ensurePage(0);
    calls[0]!.reject(new PageError("HTTP 429", true, 2000));
    await flush();
    vi.advanceTimersByTime(1999);
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(2);
  });

  it("offline, a network error does not burn attempts: the page waits for wake()", async () => {
    const { calls, fetchPage } = controlledFetch();
    let online = false;
    const loader = new PageLoader({ pageSize: 50, fetchPage, isOnline: () => online, backoffMs: () => 10 });
    loader.ensurePage(0);
    calls[0]!.reject(new TypeError("Failed to fetch"));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "failed", offline: true, attempt: 1 });
    vi.advanceTimersByTime(10 * FAILED_RETRY_MS);
    expect(calls).toHaveLength(1); // nothing while offline
    online = true;
    loader.wake();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve(pageOf(0));
    await flush();
    expect(loader.getSnapshot().items[0]).toBe(0);
  });

  it("a request that never answers is given up after PAGE_TIMEOUT_MS and asked again (no skeletons for good)", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 500 });
    loader.ensurePage(0);
    vi.advanceTimersByTime(PAGE_TIMEOUT_MS - 1);
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loading", attempt: 1 });
    vi.advanceTimersByTime(1);
    expect(calls[0]!.signal.aborted).toBe(true);
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "retrying", attempt: 1, error: "no answer in 15 s" });
    vi.advanceTimersByTime(500);
    expect(calls).toHaveLength(2);
    calls[0]!.resolve(pageOf(0)); // the abandoned answer, arriving late, is ignored
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loading", attempt: 2 });
    calls[1]!.resolve(pageOf(0));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
    vi.advanceTimersByTime(10 * PAGE_TIMEOUT_MS);
    expect(calls).toHaveLength(2); // an answered request's deadline does not fire later
  });

  it("a slow answer is not a hung one: each retry waits longer (15, 30, 60 s), so a 20 s page still arrives", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 500 });
    loader.ensurePage(0);
    vi.advanceTimersByTime(PAGE_TIMEOUT_MS + 500); // attempt 1 given up, attempt 2 sent
    expect(calls).toHaveLength(2);
    vi.advanceTimersByTime(20_000);
    expect(calls[1]!.signal.aborted).toBe(false); // 20 s in: attempt 2 is still waited for
    calls[1]!.resolve(pageOf(0));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
  });

  it("an answer in time clears its deadline; stop() clears the deadlines of aborted requests", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 99);
    calls[0]!.resolve(pageOf(0));
    await flush();
    loader.stop();
    vi.advanceTimersByTime(10 * PAGE_TIMEOUT_MS);
    expect(calls).toHaveLength(2);
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
    expect(loader.getSnapshot().pages.has(1)).toBe(false);
  });

  it("wake() and retry() also cut a pending backoff short, with fresh attempts", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 5000 });
    loader.ensureRange(0, 99);
    calls[0]!.reject(new PageError("HTTP 502", true));
    calls[1]!.reject(new PageError("HTTP 502", true));
    await flush();
    loader.wake();
    expect(calls.map((c) => c.page)).toEqual([0, 1, 0, 1]);
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loading", attempt: 1 });
    vi.advanceTimersByTime(10_000);
    expect(calls).toHaveLength(4); // the cancelled backoff timers did not fire too
  });
});

describe("PageLoader stable list", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  const withHead = (page: number, head: string, total = TOTAL): PageResult<number> => ({
    ...pageOf(page),
    total,
    headCursor: head,
  });

  it("bounds every page after the first by page 0's head cursor", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    expect(calls[0]!.until).toBeNull();
    calls[0]!.resolve(withHead(0, "HEAD0"));
    await flush();
    expect(loader.getSnapshot().headCursor).toBe("HEAD0");
    loader.ensureRange(0, 160);
    expect(calls.slice(1).map((c) => [c.page, c.until])).toEqual([
      [1, "HEAD0"],
      [2, "HEAD0"],
      [3, "HEAD0"],
    ]);
  });

  it("accept() takes a page already in hand at once, as if fetched, and never asks for it", () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.accept(0, withHead(0, "HEAD0"));
    const snapshot = loader.getSnapshot(); // synchronously: the first render can show it
    expect(snapshot.total).toBe(TOTAL);
    expect(snapshot.items.slice(0, 3)).toEqual([0, 1, 2]);
    expect(snapshot.headCursor).toBe("HEAD0");
    expect(snapshot.pages.get(0)).toEqual({ state: "loaded" });
    loader.ensurePage(0);
    loader.ensureRange(0, 60);
    expect(calls.map((c) => [c.page, c.until])).toEqual([[1, "HEAD0"]]); // page 0 never fetched; bounded
    loader.accept(0, withHead(0, "OTHER")); // a page already known is not replaced
    expect(loader.getSnapshot().headCursor).toBe("HEAD0");
    loader.reset(); // a refresh asks the API for page 0
    loader.ensurePage(0);
    expect(calls.map((c) => c.page)).toEqual([1, 0]);
  });

  it("under a bound the total never grows with inserts; without until_total a short last page marks the end once it stays short", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 3, backoffMs: () => 10 });
    loader.ensurePage(0);
    calls[0]!.resolve(withHead(0, "H", 230));
    await flush();
    loader.ensurePage(1);
    calls[1]!.resolve(withHead(1, "H", 233)); // an API whose total counts the 3 new images too
    await flush();
    expect(loader.getSnapshot().total).toBe(230);
    loader.ensurePage(4);
    for (let i = 0; i < 3; i++) {
      calls[2 + i]!.resolve({ items: [200, 201], total: 230, headCursor: "x" }); // 28 deleted meanwhile
      await flush();
      expect(loader.getSnapshot().total).toBe(i < 2 ? 230 : 202); // asked again first: it may be a dropped answer
      vi.advanceTimersByTime(10);
    }
    expect(loader.getSnapshot().pages.get(4)).toEqual({ state: "loaded" });
    expect(calls).toHaveLength(5);
  });

  it("a short page mid-list keeps the total, shows its rows and asks again for the rest (bounded, with backoff)", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, maxAttempts: 3, backoffMs: (a) => 100 * a });
    loader.ensureRange(0, 99);
    calls[0]!.resolve({ ...withHead(0, "H"), boundedTotal: TOTAL });
    calls[1]!.resolve({ items: pageOf(1).items.slice(0, 20), total: TOTAL, headCursor: "X", boundedTotal: TOTAL }); // 30 rows dropped
    await flush();
    let snap = loader.getSnapshot();
    expect(snap.total).toBe(TOTAL); // the list does not end at 70
    expect([snap.items[69], snap.items[70]]).toEqual([69, undefined]); // no other image moves into the gap
    expect(snap.pages.get(1)).toMatchObject({ state: "retrying", attempt: 1 });
    loader.ensureRange(0, 160);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 3]); // pages past it are asked as usual
    calls[2]!.resolve({ ...pageOf(2), boundedTotal: TOTAL });
    calls[3]!.resolve({ ...pageOf(3), boundedTotal: TOTAL });
    await flush();
    // Still short on every attempt: asked again after each backoff, never in a tight loop, then failed.
    vi.advanceTimersByTime(99);
    expect(calls).toHaveLength(4);
    vi.advanceTimersByTime(1);
    expect(calls.map((c) => [c.page, c.until])).toEqual([[0, null], [1, null], [2, "H"], [3, "H"], [1, "H"]]);
    calls[4]!.resolve({ items: pageOf(1).items.slice(0, 20), total: TOTAL, boundedTotal: TOTAL });
    await flush();
    vi.advanceTimersByTime(200);
    calls[5]!.resolve({ items: pageOf(1).items.slice(0, 20), total: TOTAL, boundedTotal: TOTAL });
    await flush();
    snap = loader.getSnapshot();
    expect(snap.pages.get(1)).toMatchObject({ state: "failed", attempt: 3, offline: false });
    expect(snap.total).toBe(TOTAL);
    expect(snap.items[120]).toBe(120);
    vi.advanceTimersByTime(FAILED_RETRY_MS - 1);
    expect(calls).toHaveLength(6);
    vi.advanceTimersByTime(1); // the slow re-ask of any failed page
    expect(calls).toHaveLength(7);
    calls[6]!.resolve({ ...pageOf(1), boundedTotal: TOTAL }); // the whole page this time
    await flush();
    snap = loader.getSnapshot();
    expect(snap.pages.get(1)).toEqual({ state: "loaded" });
    expect(snap.items.slice(50, 100)).toEqual(pageOf(1).items);
  });

  it("a short first page (and a short page from a list without a bound) is not the end either", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage, backoffMs: () => 10 });
    loader.ensurePage(0);
    calls[0]!.resolve({ items: [0, 1, 2], total: TOTAL }); // no head cursor: an unbounded list
    await flush();
    expect(loader.getSnapshot().total).toBe(TOTAL);
    expect(loader.getSnapshot().pages.get(0)).toMatchObject({ state: "retrying" });
    vi.advanceTimersByTime(10);
    calls[1]!.resolve(pageOf(0));
    await flush();
    expect(loader.getSnapshot().pages.get(0)).toEqual({ state: "loaded" });
    loader.ensurePage(2);
    calls[2]!.resolve({ items: [], total: TOTAL }); // an empty page mid-list
    await flush();
    expect(loader.getSnapshot().total).toBe(TOTAL);
    expect(loader.getSnapshot().pages.get(2)).toMatchObject({ state: "retrying" });
    // The real end is still the end: the last page holds total - offset rows.
    loader.ensurePage(4);
    calls[3]!.resolve(pageOf(4));
    await flush();
    expect(loader.getSnapshot().pages.get(4)).toEqual({ state: "loaded" });
    expect(loader.getSnapshot().total).toBe(TOTAL);
  });

  /** A loader with pages 0 and 1 answered, page 0's head `head` as the bound of later pages. */
  const firstTwoPagesUnder = async (head: string) => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 99);
    calls[0]!.resolve(withHead(0, head));
    calls[1]!.resolve(withHead(1, head));
    await flush();
    return { calls, loader };
  };

  it("images deleted while open (a smaller total under the bound): the other pages are asked again, keeping their tiles meanwhile", async () => {
    const { calls, loader } = await firstTwoPagesUnder("H");
    // Five images above the view are deleted; page 2 now starts five images later than it did.
    loader.ensureRange(90, 149);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2]);
    calls[2]!.resolve({ items: pageOf(2).items.map((i) => i + 5), total: TOTAL - 5, headCursor: "X" });
    await flush();
    let snap = loader.getSnapshot();
    expect(snap.total).toBe(TOTAL - 5);
    expect(calls.map((c) => [c.page, c.until])).toEqual([[0, null], [1, null], [2, "H"], [1, "H"]]); // page 1 is in view
    expect(snap.items[60]).toBe(60); // its tiles stay up while it reloads
    expect(snap.pages.has(0)).toBe(false); // stale: asked again when reached
    calls[3]!.resolve({ items: pageOf(1).items.map((i) => i + 5), total: TOTAL - 5, headCursor: "X" });
    await flush();
    snap = loader.getSnapshot();
    expect([snap.items[95], snap.items[99], snap.items[100]]).toEqual([100, 104, 105]); // no image skipped
    expect(calls).toHaveLength(4); // no cascade: the same total again is no new shift
    loader.ensureRange(0, 10);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 1, 0]);
  });

  it("deletions after inserts are noticed too: the API's total counts the new images, and it drops", async () => {
    const { calls, loader } = await firstTwoPagesUnder("H");
    loader.ensureRange(100, 149);
    calls[2]!.resolve(withHead(2, "H", TOTAL + 6)); // six added above the bound: nothing moved
    await flush();
    expect(calls).toHaveLength(3);
    expect(loader.getSnapshot().total).toBe(TOTAL);
    loader.ensureRange(140, 199);
    calls[3]!.resolve({ items: pageOf(3).items.map((i) => i + 2), total: TOTAL + 4, headCursor: "X" }); // two deleted
    await flush();
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 3, 2]); // page 2, in view, is asked again
    calls[4]!.resolve({ items: pageOf(2).items.map((i) => i + 2), total: TOTAL + 4, headCursor: "X" });
    await flush();
    expect(calls).toHaveLength(5);
  });

  it("inserts and deletions that cancel out in the API's total are noticed by its count under the bound", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensureRange(0, 99);
    calls[0]!.resolve(withHead(0, "H"));
    calls[1]!.resolve({ ...withHead(1, "H"), boundedTotal: TOTAL });
    await flush();
    loader.ensureRange(90, 149);
    // Five added above the bound and five deleted above the view: the total is where it was.
    calls[2]!.resolve({ items: pageOf(2).items.map((i) => i + 5), total: TOTAL, headCursor: "X", boundedTotal: TOTAL - 5 });
    await flush();
    expect(loader.getSnapshot().total).toBe(TOTAL - 5);
    expect(calls.map((c) => c.page)).toEqual([0, 1, 2, 1]); // page 1, in view, is asked again
    calls[3]!.resolve({ items: pageOf(1).items.map((i) => i + 5), total: TOTAL, headCursor: "X", boundedTotal: TOTAL - 5 });
    await flush();
    expect(calls).toHaveLength(4); // the same count again is no new shift
    expect(loader.getSnapshot().items[99]).toBe(104); // no image skipped between pages 1 and 2
  });

  it("prepend() puts new images first without moving page numbers", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve(withHead(0, "H"));
    await flush();
    loader.prepend([-3, -2, -1], "NEWHEAD");
    const snap = loader.getSnapshot();
    expect(snap.items.slice(0, 5)).toEqual([-3, -2, -1, 0, 1]);
    expect(snap.total).toBe(TOTAL + 3);
    expect(snap.prepended).toBe(3);
    expect(snap.headCursor).toBe("NEWHEAD");
    // Grid items 53..55 are bounded-list items 50..52: page 1, still bounded by the first head.
    loader.ensureRange(53, 55);
    expect(calls.slice(1).map((c) => [c.page, c.until])).toEqual([[1, "H"]]);
    calls[1]!.resolve(withHead(1, "H"));
    await flush();
    expect(loader.getSnapshot().items[53]).toBe(50);
    expect(loader.getSnapshot().items[TOTAL + 2]).toBeUndefined();
  });

  it("recheckEmpty(): an empty list asks page 0 again, keeps its empty state meanwhile, and takes the new head", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve({ items: [], total: 0, headCursor: null });
    await flush();
    expect(loader.getSnapshot().total).toBe(0);
    loader.recheckEmpty();
    loader.recheckEmpty(); // never twice at once
    expect(calls.map((c) => [c.page, c.until])).toEqual([[0, null], [0, null]]);
    expect(loader.getSnapshot().total).toBe(0);
    calls[1]!.resolve({ items: [3, 2, 1], total: 3, headCursor: "H3" });
    await flush();
    const snap = loader.getSnapshot();
    expect([snap.total, snap.items, snap.headCursor]).toEqual([3, [3, 2, 1], "H3"]);
    loader.recheckEmpty(); // no longer empty: nothing
    expect(calls).toHaveLength(2);
  });

  it("recheckEmpty() on a list emptied while open: asked unbounded, the old bound's pages forgotten", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve({ ...pageOf(0), headCursor: "H" });
    await flush();
    loader.ensurePage(3);
    calls[1]!.resolve({ items: [], total: 0, headCursor: null, boundedTotal: 0 }); // every image deleted
    await flush();
    expect(loader.getSnapshot().total).toBe(0);
    loader.recheckEmpty();
    expect(calls.map((c) => [c.page, c.until])).toEqual([[0, null], [3, "H"], [0, null]]);
    expect([...loader.getSnapshot().pages.keys()]).toEqual([0]);
    calls[2]!.resolve({ items: Array.from({ length: 50 }, (_, i) => 500 - i), total: 200, headCursor: "H2" });
    await flush();
    expect([loader.getSnapshot().total, loader.getSnapshot().headCursor]).toEqual([200, "H2"]);
    loader.ensurePage(3); // its old status would have kept it from being asked
    expect(calls.map((c) => [c.page, c.until])).toEqual([[0, null], [3, "H"], [0, null], [3, "H2"]]);
  });

  it("an API without head_cursor pages by plain offset (no until)", async () => {
    const { calls, fetchPage } = controlledFetch();
    const loader = new PageLoader({ pageSize: 50, fetchPage });
    loader.ensurePage(0);
    calls[0]!.resolve(pageOf(0));
    await flush();
    loader.ensurePage(1);
    expect(calls[1]!.until).toBeNull();
    expect(loader.getSnapshot().headCursor).toBeNull();
  });
});

describe("defaultBackoff", () => {
  it("doubles from 500 ms and caps at 8 s, with bounded jitter", () => {
    expect(defaultBackoff(1, () => 0.5)).toBe(500);
    expect(defaultBackoff(2, () => 0.5)).toBe(1000);
    expect(defaultBackoff(3, () => 0.5)).toBe(2000);
    expect(defaultBackoff(10, () => 0.5)).toBe(8000);
    expect(defaultBackoff(1, () => 0)).toBe(400);
    expect(defaultBackoff(1, () => 1)).toBe(600);
  });
});
