/**
 * A small page loader keyed by page number, for a random-access grid over a limit/offset API.
 *
 * Why not react-window-infinite-loader: 2.0.1 is List-only and skips every other unloaded range
 * (its `index += 2` loop), so a user who stops scrolling can be left looking at skeletons.
 *
 * Guarantees:
 * - a page is never requested while it is loaded, in flight or waiting for a retry;
 * - transient failures are retried with exponential backoff, or after the server's Retry-After;
 *   a page that keeps failing ends in `failed` (shown as such, not as an endless skeleton);
 * - at most `maxInFlight` requests are out at once; other wanted pages wait, nearest to view first,
 *   and a waiting page (or one awaiting a retry) that the view has left by more than a page is
 *   dropped: a fast scroll over a slow listing does not send a request for every page it passed;
 * - nothing stays failed for good: `wake()` (the browser came back online, the tab became visible)
 *   and `retry()` (the user's Retry button) ask again, and a page that failed while the browser was
 *   offline does not burn its attempts: it waits for `wake()`;
 * - a stable list under inserts: page 0's `headCursor` becomes the `until` bound of every
 *   request after it, so offsets keep meaning the same rows however many images are added meanwhile.
 *   Images newer than the bound are added at the top with `prepend()`, never by shifting pages.
 * Framework-free: React subscribes through `subscribe`/`getSnapshot` (useSyncExternalStore).
 */
import { pagesForRange } from "./layout";

export type PageStatus =
  | { state: "loading"; attempt: number }
  | { state: "retrying"; attempt: number; error: string; retryAt: number }
  | { state: "failed"; attempt: number; error: string; offline: boolean }
  | { state: "loaded" };

export interface PageResult<T> {
  items: T[];
  total: number;
  /** Cursor of the page's first row (API `head_cursor`); absent from APIs that predate it. */
  headCursor?: string | null;
  /** Images at or below the bound (API `until_total`), for pages asked under one; absent from APIs that predate it. */
  boundedTotal?: number;
}

export class PageError extends Error {
  /** False for errors that a retry cannot fix (e.g. HTTP 400), so they fail at once. */
  readonly retryable: boolean;
  /** The server's Retry-After, in ms, when it sent one. */
  readonly retryAfterMs: number | null;
  constructor(message: string, retryable: boolean, retryAfterMs: number | null = null) {
    super(message);
    this.name = "PageError";
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
  }
}

export type FetchPage<T> = (
  page: number,
  pageSize: number,
  signal: AbortSignal,
  /** `until` bound (the first page's head cursor); null for page 0 and for APIs without one. */
  until: string | null,
) => Promise<PageResult<T>>;

export interface PageLoaderOptions<T> {
  pageSize: number;
  fetchPage: FetchPage<T>;
  /** Attempts per page before it is marked failed (first try included). */
  maxAttempts?: number;
  /** Delay before retry number `attempt` (1 = the first retry). */
  backoffMs?: (attempt: number) => number;
  now?: () => number;
  /** navigator.onLine by default: a network error while offline waits for wake() instead of retrying. */
  isOnline?: () => boolean;
  /** Delay before a failed page is asked again by itself (no Retry-After). */
  failedRetryMs?: number;
  /** An attempt that has not answered by then is aborted and counts as a failure (a hung request). */
  timeoutMs?: number;
  /** Most pages kept loaded; the farthest from view are forgotten past it (memory over long scrolls). */
  maxLoadedPages?: number;
  /** Most listing requests in flight at once; more wanted pages wait, the nearest to view asked first. */
  maxInFlight?: number;
  /** document.visibilityState by default: a retry falling due in a hidden tab waits for wake(). */
  isVisible?: () => boolean;
}

export interface PagesSnapshot<T> {
  /** Sparse: items[i] is undefined until its page has loaded. Prepended images come first. */
  items: readonly (T | undefined)[];
  /** Null until the first page answers. */
  total: number | null;
  /** Keyed by page number of the bounded list (before any prepended images). */
  pages: ReadonlyMap<number, PageStatus>;
  pageSize: number;
  /** Images added at the top since the picker opened (they come before page 0). */
  prepended: number;
  /** Cursor of the newest image shown (poll `newer_than` with it); null until known or unsupported. */
  headCursor: string | null;
}

/** 500 ms, 1 s, 2 s, ... capped at 8 s, with ±20 % jitter so many clients do not retry in step. */
export function defaultBackoff(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(8000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** A page that failed with server trouble and no Retry-After is asked again this much later, by itself. */
export const FAILED_RETRY_MS = 30_000;

/**
 * Longest wait for one page's first attempt (its retries wait 2x, then 4x). A request that hangs (a
 * proxy that accepts and never answers, a stalled connection) would otherwise keep its page
 * "loading" for good: skeletons forever, and neither wake() nor Retry asks again, since the page is
 * neither failed nor retrying.
 */
export const PAGE_TIMEOUT_MS = 15_000;

/** Pages kept loaded by default: 60 pages of 50 is 3,000 images (a few MB), any library size. */
export const MAX_LOADED_PAGES = 60;

/**
 * Listing requests in flight at once. A scroll over a slow listing (3-8 s a page) otherwise sent a
 * request for every page passed over (21 in a 6 s scroll), each costing the server a query and
 * competing with the thumbnails for the browser's 6 connections per host.
 */
export const MAX_PAGES_IN_FLIGHT = 4;

/**
 * A view that has not moved for this long is at rest: requests out for pages it has left are aborted
 * then, so the pages in view get the slots (a 3-8 s page passed over would otherwise hold one).
 */
export const SETTLE_MS = 250;

/** Retry-After is honoured but bounded: a server asking for an hour would otherwise freeze the grid. */
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * On wake("online") (the network came back), a request out for longer than this is given up and
 * asked again at once: it most likely went out on the connection that just died, and its own
 * deadline (15-60 s) would keep the page loading long after the network is back.
 */
export const WAKE_STALE_MS = 5_000;

function isPageResult<T>(value: unknown): value is PageResult<T> {
  const result = value as PageResult<T> | null | undefined;
  return Array.isArray(result?.items) && typeof result.total === "number" && Number.isFinite(result.total);
}

const defaultIsOnline = () => typeof navigator === "undefined" || navigator.onLine !== false;
const defaultIsVisible = () => typeof document === "undefined" || document.visibilityState !== "hidden";

export class PageLoader<T> {
  readonly pageSize: number;
  private readonly fetchPage: FetchPage<T>;
  private readonly maxAttempts: number;
  private readonly backoffMs: (attempt: number) => number;
  private readonly now: () => number;
  private readonly isOnline: () => boolean;
  private readonly isVisible: () => boolean;
  /** Per in-flight page: when its request went out (wake() re-asks the ones out too long). */
  private readonly startedAt = new Map<number, number>();
  private readonly failedRetryMs: number;
  private readonly timeoutMs: number;
  private readonly maxLoadedPages: number;
  private readonly maxInFlight: number;
  /** Pages wanted while maxInFlight requests were out: shown as loading, asked nearest-first as slots free. */
  private readonly queued = new Set<number>();
  private settleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private readonly controllers = new Map<number, AbortController>();
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();
  /** Per in-flight page: the timer that gives up on a request that does not answer. */
  private readonly deadlines = new Map<number, ReturnType<typeof setTimeout>>();
  private readonly listeners = new Set<() => void>();
  /** Undefined until page 0 answers; then the bound (null if the API has no head_cursor). */
  private until: string | null | undefined = undefined;
  private snapshot: PagesSnapshot<T>;
  private running = true;
  /** The last range asked for (grid indices): what is on screen, reloaded when the list shifted. */
  private lastRange: [number, number] | null = null;
  /** The API's total in the last answer, as sent: it counts images added since too, so it only drops on deletions. */
  private lastApiTotal: number | null = null;
  /** Images at or below the bound in the last answer that said (the first page's total, then `until_total`). */
  private lastBoundedTotal: number | null = null;

  constructor(opts: PageLoaderOptions<T>) {
    if (!(opts.pageSize > 0)) throw new RangeError("pageSize must be positive");
    this.pageSize = opts.pageSize;
    this.fetchPage = opts.fetchPage;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 4);
    this.backoffMs = opts.backoffMs ?? ((a) => defaultBackoff(a));
    this.now = opts.now ?? Date.now;
    this.isOnline = opts.isOnline ?? defaultIsOnline;
    this.isVisible = opts.isVisible ?? defaultIsVisible;
    this.failedRetryMs = opts.failedRetryMs ?? FAILED_RETRY_MS;
    this.timeoutMs = opts.timeoutMs ?? PAGE_TIMEOUT_MS;
    this.maxLoadedPages = Math.max(2, opts.maxLoadedPages ?? MAX_LOADED_PAGES);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? MAX_PAGES_IN_FLIGHT);
    this.snapshot = this.empty();
  }

  getSnapshot = (): PagesSnapshot<T> => this.snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Make sure every page overlapping items [start, stop] (grid indices) is loaded or on its way. */
  ensureRange(start: number, stop: number): void {
    this.lastRange = [start, stop];
    const shift = this.snapshot.prepended;
    const baseTotal = this.snapshot.total === null ? null : this.snapshot.total - shift;
    const wanted = pagesForRange(start - shift, stop - shift, this.pageSize, baseTotal);
    this.dropPassedPages(wanted);
    for (const page of wanted) this.ensurePage(page);
    this.pump();
    clearTimeout(this.settleTimer);
    this.settleTimer = this.queued.size > 0 ? setTimeout(() => this.abortPassed(wanted), SETTLE_MS) : undefined;
  }

  /** At rest with pages still waiting: requests for pages more than a page from the view give way. */
  private abortPassed(wanted: readonly number[]): void {
    this.settleTimer = undefined;
    if (!this.running || wanted.length === 0) return;
    const lo = wanted[0]! - 1;
    const hi = wanted[wanted.length - 1]! + 1;
    const passed = [...this.controllers.keys()].filter((p) => (p < lo || p > hi) && (p !== 0 || this.until !== undefined));
    if (passed.length === 0) return;
    const pages = new Map(this.snapshot.pages);
    for (const p of passed) {
      this.controllers.get(p)!.abort();
      this.controllers.delete(p);
      clearTimeout(this.deadlines.get(p));
      this.deadlines.delete(p);
      pages.delete(p);
    }
    this.commit({ pages });
    this.pump();
  }

  /**
   * Pages waiting for a request slot or for a retry that the view has left behind (more than a page
   * from what is wanted now) are forgotten, asked again if the user comes back. Requests already out
   * are left to answer while the view moves (aborting them would free their slots for yet more pages
   * passed over, a request per page again); once it rests, `abortPassed` makes them give way. Page 0
   * is kept until it answers: it sets the bound.
   */
  private dropPassedPages(wanted: readonly number[]): void {
    if (wanted.length === 0) return;
    const lo = wanted[0]! - 1;
    const hi = wanted[wanted.length - 1]! + 1;
    const passed = [...this.timers.keys(), ...this.queued].filter(
      (p) => (p < lo || p > hi) && (p !== 0 || this.until !== undefined),
    );
    if (passed.length === 0) return;
    const pages = new Map(this.snapshot.pages);
    for (const p of passed) {
      clearTimeout(this.timers.get(p));
      this.timers.delete(p);
      this.queued.delete(p);
      pages.delete(p);
    }
    this.commit({ pages });
  }

  /** Free request slots go to the queued pages nearest the view. */
  private pump(): void {
    while (this.running && this.queued.size > 0 && this.controllers.size < this.maxInFlight) {
      const shift = this.snapshot.prepended;
      const [start, stop] = this.lastRange ?? [shift, shift];
      const centre = (start + stop) / 2 - shift;
      const distance = (p: number) => Math.abs((p + 0.5) * this.pageSize - centre);
      const next = [...this.queued].sort((a, b) => distance(a) - distance(b))[0]!;
      this.queued.delete(next);
      this.request(next, 1);
    }
  }

  ensurePage(page: number): void {
    if (!this.running || page < 0) return;
    const { total, prepended } = this.snapshot;
    if (total !== null && page * this.pageSize >= total - prepended && page > 0) return;
    if (this.snapshot.pages.has(page)) return; // loaded, loading, retrying or failed: never twice
    if (this.controllers.size >= this.maxInFlight) {
      this.queued.add(page);
      this.setPage(page, { state: "loading", attempt: 1 });
      return;
    }
    this.request(page, 1);
  }

  /**
   * A page already in hand (the server put it into the HTML): loaded at once, synchronously, exactly
   * as if it had been fetched, so the first render can show it. Ignored if the page is already known.
   */
  accept(page: number, result: PageResult<T>): void {
    if (!this.running || page < 0 || this.snapshot.pages.has(page)) return;
    this.onLoaded(page, result);
  }

  /** The user's Retry: every failed or backing-off page is asked again now, with fresh attempts. */
  retry(page?: number): void {
    if (!this.running) return;
    const stuck = [...this.snapshot.pages].filter(
      ([p, s]) => (s.state === "failed" || s.state === "retrying") && (page === undefined || p === page),
    );
    if (stuck.length === 0) return;
    // Everything failed at once (back online after a scroll offline, the tab shown after an outage):
    // the pages the view has left are forgotten (asked again when reached), the rest go through the
    // request slots nearest-first, not a request each at once (11 at Slow 3G, most for pages passed).
    const [lo, hi] = this.nearView();
    const pages = new Map(this.snapshot.pages);
    for (const [p] of stuck) {
      clearTimeout(this.timers.get(p));
      this.timers.delete(p);
      if (page === undefined && (p < lo || p > hi) && (p !== 0 || this.until !== undefined)) {
        pages.delete(p);
      } else {
        this.queued.add(p);
        pages.set(p, { state: "loading", attempt: 1 });
      }
    }
    this.commit({ pages });
    this.pump();
  }

  /** Pages within a page of the last range asked for (all pages before any range was). */
  private nearView(): [number, number] {
    if (!this.lastRange) return [-Infinity, Infinity];
    const shift = this.snapshot.prepended;
    const baseTotal = this.snapshot.total === null ? null : this.snapshot.total - shift;
    const wanted = pagesForRange(this.lastRange[0] - shift, this.lastRange[1] - shift, this.pageSize, baseTotal);
    if (wanted.length === 0) return [-Infinity, Infinity];
    return [wanted[0]! - 1, wanted[wanted.length - 1]! + 1];
  }

  /**
   * The connection came back or the tab became visible: same as Retry, the user need not press it.
   * Retries that fell due while the tab was hidden (they waited) are asked now. When the network came
   * back (`online`, not a tab shown again: a slow request then is only slow, and restarting it would
   * lose its progress), requests out for more than WAKE_STALE_MS and retries in flight (their page
   * failed before) are asked again too, fresh: they went out on the connection that died, and a hung
   * one would otherwise hold its page until its deadline (15-60 s) after the network is back.
   */
  wake(reason: "online" | "visible" = "online"): void {
    if (!this.running) return;
    if (reason === "visible") {
      this.retry();
      return;
    }
    const now = this.now();
    const stale = [...this.controllers.keys()].filter((p) => {
      const status = this.snapshot.pages.get(p);
      const retrying = status?.state === "loading" && status.attempt > 1; // a page already in trouble
      return retrying || now - (this.startedAt.get(p) ?? now) > WAKE_STALE_MS;
    });
    for (const p of stale) {
      this.controllers.get(p)!.abort();
      this.controllers.delete(p);
      clearTimeout(this.deadlines.get(p));
      this.deadlines.delete(p);
      this.request(p, 1);
    }
    this.retry();
  }

  /**
   * Add images newer than the list's head at the top (newest first). The bounded pages keep their
   * numbers; grid indices of everything below move down by `items.length`.
   */
  prepend(items: readonly T[], headCursor: string | null): void {
    if (items.length === 0 || this.snapshot.total === null) return;
    const next = [...items, ...this.snapshot.items];
    this.commit({
      items: next,
      total: this.snapshot.total + items.length,
      prepended: this.snapshot.prepended + items.length,
      headCursor: headCursor ?? this.snapshot.headCursor,
    });
  }

  /**
   * An empty list asks page 0 again instead of `newer_than` (the poll, focus, `online`), keeping the
   * empty state on screen while it does: an empty library has no head to poll from, and one emptied
   * while open (every image deleted) shows no "new images" notice over its empty state. Its answer
   * is a first answer: the bound and the total come from it, and the pages known before are
   * forgotten (the old bound's, they would never be asked again). Nothing happens unless the list
   * is empty and page 0 idle.
   */
  recheckEmpty(): void {
    if (!this.running || this.snapshot.total !== 0 || this.controllers.has(0) || this.timers.has(0)) return;
    this.stop();
    this.running = true;
    this.until = undefined;
    this.lastApiTotal = null;
    this.lastBoundedTotal = null;
    this.commit({ pages: new Map() });
    this.request(0, 1);
  }

  /** Abort in-flight requests and pending retries; their pages become requestable again on `start()`. */
  stop(): void {
    this.running = false;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    for (const c of this.controllers.values()) c.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    for (const t of this.deadlines.values()) clearTimeout(t);
    this.deadlines.clear();
    const pages = new Map(this.snapshot.pages);
    for (const p of [...this.controllers.keys(), ...this.timers.keys(), ...this.queued]) pages.delete(p);
    this.queued.clear();
    this.controllers.clear();
    this.timers.clear();
    this.commit({ pages });
  }

  start(): void {
    this.running = true;
  }

  /** Forget everything (e.g. the user asked to reload, or too many new images to add) and start over. */
  reset(): void {
    this.stop();
    this.running = true;
    this.until = undefined;
    this.lastApiTotal = null;
    this.lastBoundedTotal = null;
    this.commit(this.empty());
  }

  private empty(): PagesSnapshot<T> {
    return { items: [], total: null, pages: new Map(), pageSize: this.pageSize, prepended: 0, headCursor: null };
  }

  private request(page: number, attempt: number): void {
    const ctrl = new AbortController();
    this.controllers.set(page, ctrl);
    this.startedAt.set(page, this.now());
    this.setPage(page, { state: "loading", attempt });
    // Until page 0 answers there is no bound yet: pages asked for together with it (a restored scroll
    // position) go unbounded, which is the same list unless an image lands in those milliseconds.
    const until = this.until ?? null;
    const settle = (): boolean => {
      if (this.controllers.get(page) !== ctrl) return false; // stopped, superseded or timed out
      this.controllers.delete(page);
      clearTimeout(this.deadlines.get(page));
      this.deadlines.delete(page);
      return true;
    };
    // A slow answer is not a hung one: each retry waits twice as long (15, 30, 60 s), so a page that
    // takes 20 s on a bad connection still arrives.
    const timeout = Math.min(4 * this.timeoutMs, this.timeoutMs * 2 ** (attempt - 1));
    clearTimeout(this.deadlines.get(page));
    this.deadlines.set(
      page,
      setTimeout(() => {
        if (!settle()) return;
        ctrl.abort();
        this.onFailed(page, attempt, new PageError(`no answer in ${Math.round(timeout / 1000)} s`, true));
        this.pump();
      }, timeout),
    );
    // A host's own fetchPage may throw instead of rejecting, return no promise, or resolve to
    // something that is not a page: each is a failure of this page (shown, retried), never an
    // exception out of ensureRange (a render) or an unhandled rejection.
    new Promise<PageResult<T>>((resolve) => resolve(this.fetchPage(page, this.pageSize, ctrl.signal, until))).then(
      (result) => {
        if (!settle()) return;
        if (!isPageResult(result)) {
          this.onFailed(page, attempt, new PageError("Malformed library response", false));
        } else {
          this.onLoaded(page, result, attempt);
        }
        this.pump();
      },
      (err: unknown) => {
        if (!settle()) return;
        this.onFailed(page, attempt, err);
        this.pump();
      },
    );
  }

  private onLoaded(page: number, { items, total, headCursor, boundedTotal }: PageResult<T>, attempt = 1): void {
    const { prepended } = this.snapshot;
    let firstAnswer = false;
    if (page === 0 && this.until === undefined) {
      this.until = headCursor ?? null;
      firstAnswer = true;
    }
    // Under a bound, the list cannot grow (newer images come through prepend()); it can shrink when
    // images are deleted, and a short page marks the end. Without a bound, the latest answer wins.
    // The API's count under the bound, when it gives one, is exact: inserts above it do not move it.
    const bounded = firstAnswer ? total : this.until ? boundedTotal : undefined;
    let baseTotal = Math.max(0, bounded ?? total);
    const known = this.snapshot.total === null ? null : this.snapshot.total - prepended;
    if (this.until && known !== null && !firstAnswer) baseTotal = Math.min(baseTotal, known);
    // A short page: fewer rows than the total says this page holds (a host's fetchPage that drops
    // rows, a proxy or server that cut the answer). It is not the end of the list: the rows it did
    // bring are shown at their offsets, the total stays, and the page is asked again like a failure
    // (backoff, then `failed` and the slow re-ask), so the missing rows show a retry state, not an
    // end of the list for the session. Only under a bound from an API without `until_total` is a
    // short page also how deletions show (its total counts the images added since as well): there it
    // marks the end once the same answer came back every attempt, unless a later page has rows.
    const expected = Math.max(0, Math.min(this.pageSize, baseTotal - page * this.pageSize));
    let short = items.length < expected;
    if (short && Boolean(this.until) && !firstAnswer && boundedTotal === undefined && attempt >= this.maxAttempts) {
      const laterRows = [...this.snapshot.pages].some(([p, s]) => p > page && s.state === "loaded");
      if (!laterRows) short = false;
    }
    if (!short && items.length < this.pageSize && (items.length > 0 || page > 0)) {
      baseTotal = Math.min(baseTotal, page * this.pageSize + items.length);
    }
    const next = this.snapshot.items.slice();
    next.length = prepended + baseTotal;
    const offset = prepended + page * this.pageSize;
    items.forEach((item, i) => {
      if (offset + i < next.length) next[offset + i] = item;
    });
    const pages = new Map(this.snapshot.pages);
    // A smaller total than the last answer's: images were deleted (the API's total also counts the
    // images added since the bound, so the bounded count alone would hide deletions after inserts).
    // Every offset below a deleted image now means the next one (a page loaded after it would skip as
    // many images as were deleted, or repeat them scrolling up). The other loaded pages are stale: they
    // keep their tiles on screen and are asked again, those in view at once, the rest when reached.
    // With the API's count under the bound, only deletions under it lower that count, even when
    // as many images were added meanwhile (which leaves the API's total where it was).
    const lastApiTotal = this.lastApiTotal;
    const lastBounded = this.lastBoundedTotal;
    this.lastApiTotal = total;
    if (bounded !== undefined) this.lastBoundedTotal = bounded;
    const shrank =
      bounded !== undefined && lastBounded !== null
        ? bounded < lastBounded
        : (lastApiTotal !== null && total < lastApiTotal) || (known !== null && total < known);
    const shifted = Boolean(this.until) && !firstAnswer && shrank;
    if (shifted) for (const [p, s] of pages) if (p !== page && s.state === "loaded") pages.delete(p);
    if (!short) pages.set(page, { state: "loaded" });
    this.evictFarPages(pages, next, page);
    const patch: Partial<PagesSnapshot<T>> = { items: next, total: prepended + baseTotal, pages };
    if (firstAnswer) patch.headCursor = this.until ?? null;
    this.commit(patch);
    if (short) this.onFailed(page, attempt, new PageError(`only ${items.length} of ${expected} images came back`, true));
    if (shifted && this.lastRange) this.ensureRange(this.lastRange[0], this.lastRange[1]);
  }

  /**
   * Memory stays bounded over a long scroll through a big library: past `maxLoadedPages` loaded
   * pages, the ones farthest from the last range asked for are forgotten (their items dropped, asked
   * again if the user comes back). `page`, just loaded, is always kept.
   */
  private evictFarPages(pages: Map<number, PageStatus>, items: (T | undefined)[], page: number): void {
    const loaded = [...pages].filter(([, s]) => s.state === "loaded").map(([p]) => p);
    if (loaded.length <= this.maxLoadedPages) return;
    const shift = this.snapshot.prepended;
    const [start, stop] = this.lastRange ?? [shift + page * this.pageSize, shift + page * this.pageSize];
    const centre = (start + stop) / 2 - shift;
    const distance = (p: number) => Math.abs((p + 0.5) * this.pageSize - centre);
    const far = loaded.filter((p) => p !== page).sort((a, b) => distance(b) - distance(a));
    for (const p of far.slice(0, loaded.length - this.maxLoadedPages)) {
      pages.delete(p);
      const from = shift + p * this.pageSize;
      for (let i = from; i < Math.min(items.length, from + this.pageSize); i++) delete items[i];
    }
  }

  private onFailed(page: number, attempt: number, err: unknown): void {
    const error = err instanceof Error ? err.message : String(err);
    const isPageError = err instanceof PageError;
    // fetch() rejects with a TypeError on a network failure; offline, retrying only burns attempts.
    const offline = !isPageError && !this.isOnline();
    const retryable = !isPageError || err.retryable;
    const retryAfter = isPageError && err.retryAfterMs !== null ? Math.min(MAX_RETRY_AFTER_MS, err.retryAfterMs) : null;
    if (offline || !retryable || attempt >= this.maxAttempts) {
      this.setPage(page, { state: "failed", attempt, error, offline });
      // Come back by ourselves: when the server said to, or a while later (wake() and Retry work sooner).
      // Offline pages wait for the `online` event. A 4xx is not retried with backoff, but it is asked
      // again a while later too: a 404/401/403 from a proxy mid-deploy or an expired session mends
      // itself, and the message on screen says the library "will be tried again by itself".
      if (!offline) this.schedule(page, retryAfter ?? this.failedRetryMs, 1);
      return;
    }
    const delay = Math.max(this.backoffMs(attempt), retryAfter ?? 0);
    this.setPage(page, { state: "retrying", attempt, error, retryAt: this.now() + delay });
    this.schedule(page, delay, attempt + 1);
  }

  private schedule(page: number, delay: number, attempt: number): void {
    this.timers.set(
      page,
      setTimeout(() => {
        this.timers.delete(page);
        // A hidden tab does not retry at full rate: the page keeps its retrying/failed state (what
        // the user will see) and wake() asks it again once the tab is visible.
        if (this.running && this.isVisible()) this.request(page, attempt);
      }, delay),
    );
  }

  private setPage(page: number, status: PageStatus): void {
    const pages = new Map(this.snapshot.pages);
    pages.set(page, status);
    this.commit({ pages });
  }

  private commit(patch: Partial<PagesSnapshot<T>>): void {
    this.snapshot = { ...this.snapshot, ...patch };
    for (const l of this.listeners) l();
  }
}
