/**
 * A small page loader keyed by page number, for a random-access grid over a limit/offset API.
 *
 * Why not react-window-infinite-loader: 2.0.1 is List-only and skips every other unloaded range
 * (its `index += 2` loop), so a user who stops scrolling can be left looking at skeletons.
 *
 * Guarantees: a page is never requested while it is loaded, in flight or waiting for a retry;
 * transient failures are retried with exponential backoff; a page that keeps failing ends in
 * `failed` (shown as such, not as an endless skeleton) until `retry()` is called.
 * Framework-free: React subscribes through `subscribe`/`getSnapshot` (useSyncExternalStore).
 */
import { pagesForRange } from "./layout";

export type PageStatus =
  | { state: "loading"; attempt: number }
  | { state: "retrying"; attempt: number; error: string; retryAt: number }
  | { state: "failed"; attempt: number; error: string }
  | { state: "loaded" };

export interface PageResult<T> {
  items: T[];
  total: number;
}

export class PageError extends Error {
  /** False for errors that a retry cannot fix (e.g. HTTP 400), so they fail at once. */
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.name = "PageError";
    this.retryable = retryable;
  }
}

export interface PageLoaderOptions<T> {
  pageSize: number;
  fetchPage: (page: number, pageSize: number, signal: AbortSignal) => Promise<PageResult<T>>;
  /** Attempts per page before it is marked failed (first try included). */
  maxAttempts?: number;
  /** Delay before retry number `attempt` (1 = the first retry). */
  backoffMs?: (attempt: number) => number;
  now?: () => number;
}

export interface PagesSnapshot<T> {
  /** Sparse: items[i] is undefined until its page has loaded. */
  items: readonly (T | undefined)[];
  /** Null until the first page answers. */
  total: number | null;
  pages: ReadonlyMap<number, PageStatus>;
  pageSize: number;
}

/** 500 ms, 1 s, 2 s, ... capped at 8 s, with ±20 % jitter so many clients do not retry in step. */
export function defaultBackoff(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(8000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class PageLoader<T> {
  readonly pageSize: number;
  private readonly fetchPage: PageLoaderOptions<T>["fetchPage"];
  private readonly maxAttempts: number;
  private readonly backoffMs: (attempt: number) => number;
  private readonly now: () => number;
  private readonly controllers = new Map<number, AbortController>();
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();
  private readonly listeners = new Set<() => void>();
  private snapshot: PagesSnapshot<T>;
  private running = true;

  constructor(opts: PageLoaderOptions<T>) {
    if (!(opts.pageSize > 0)) throw new RangeError("pageSize must be positive");
    this.pageSize = opts.pageSize;
    this.fetchPage = opts.fetchPage;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 4);
    this.backoffMs = opts.backoffMs ?? ((a) => defaultBackoff(a));
    this.now = opts.now ?? Date.now;
    this.snapshot = { items: [], total: null, pages: new Map(), pageSize: this.pageSize };
  }

  getSnapshot = (): PagesSnapshot<T> => this.snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Make sure every page overlapping items [start, stop] is loaded or on its way. */
  ensureRange(start: number, stop: number): void {
    for (const page of pagesForRange(start, stop, this.pageSize, this.snapshot.total)) this.ensurePage(page);
  }

  ensurePage(page: number): void {
    if (!this.running || page < 0) return;
    const { total } = this.snapshot;
    if (total !== null && page * this.pageSize >= total && page > 0) return;
    if (this.snapshot.pages.has(page)) return; // loaded, loading, retrying or failed: never twice
    this.request(page, 1);
  }

  /** Retry failed pages (all of them, or one). Pages that are loading or loaded are left alone. */
  retry(page?: number): void {
    if (!this.running) return;
    const failed = [...this.snapshot.pages].filter(([p, s]) => s.state === "failed" && (page === undefined || p === page));
    for (const [p] of failed) this.request(p, 1);
  }

  /** Abort in-flight requests and pending retries; their pages become requestable again on `start()`. */
  stop(): void {
    this.running = false;
    for (const c of this.controllers.values()) c.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    const pages = new Map(this.snapshot.pages);
    for (const p of [...this.controllers.keys(), ...this.timers.keys()]) pages.delete(p);
    this.controllers.clear();
    this.timers.clear();
    this.commit({ pages });
  }

  start(): void {
    this.running = true;
  }

  /** Forget everything (e.g. the user asked to reload after an error) and start over. */
  reset(): void {
    this.stop();
    this.running = true;
    this.commit({ items: [], total: null, pages: new Map() });
  }

  private request(page: number, attempt: number): void {
    const ctrl = new AbortController();
    this.controllers.set(page, ctrl);
    this.setPage(page, { state: "loading", attempt });
    this.fetchPage(page, this.pageSize, ctrl.signal).then(
      (result) => {
        if (this.controllers.get(page) !== ctrl) return; // stopped or superseded
        this.controllers.delete(page);
        this.onLoaded(page, result);
      },
      (err: unknown) => {
        if (this.controllers.get(page) !== ctrl) return;
        this.controllers.delete(page);
        this.onFailed(page, attempt, err);
      },
    );
  }

  private onLoaded(page: number, { items, total }: PageResult<T>): void {
    const offset = page * this.pageSize;
    const next = this.snapshot.items.slice();
    // The total can change between pages (images added or deleted); the latest answer wins.
    next.length = Math.max(0, total);
    items.forEach((item, i) => {
      if (offset + i < next.length) next[offset + i] = item;
    });
    const pages = new Map(this.snapshot.pages);
    pages.set(page, { state: "loaded" });
    this.commit({ items: next, total, pages });
  }

  private onFailed(page: number, attempt: number, err: unknown): void {
    const error = err instanceof Error ? err.message : String(err);
    const retryable = !(err instanceof PageError) || err.retryable;
    if (!retryable || attempt >= this.maxAttempts) {
      this.setPage(page, { state: "failed", attempt, error });
      return;
    }
    const delay = this.backoffMs(attempt);
    this.setPage(page, { state: "retrying", attempt, error, retryAt: this.now() + delay });
    this.timers.set(
      page,
      setTimeout(() => {
        this.timers.delete(page);
        if (this.running) this.request(page, attempt + 1);
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
