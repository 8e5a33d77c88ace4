import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import {
  fetchLibraryPage,
  fetchNewerImages,
  pageResult,
  takeInlineFirstPage,
  type NewerImages,
  type RequestOptions,
} from "./api";
import { PAGE_TIMEOUT_MS, PageLoader, type FetchPage, type PagesSnapshot } from "./pageLoader";
import type { LibraryImage } from "./types";

/** How often to ask whether images were added while the picker is open (and visible). */
export const NEWER_POLL_MS = 20_000;
/** Most new images added in place; more than that and the list reloads from the top. */
export const NEWER_LIMIT = 200;

export type FetchNewer = (cursor: string, limit: number, signal: AbortSignal) => Promise<NewerImages>;

export interface LibrarySource {
  apiBase: string;
  pageSize: number;
  /** Headers and filters for the built-in HTTP fetch. A change of filters reloads the list. */
  request?: RequestOptions;
  /** Replaces the HTTP page fetch (tests, hosts with their own transport). */
  fetchPage?: FetchPage<LibraryImage>;
  fetchNewer?: FetchNewer;
  /** Called when everything failed should try again (thumbnails listen through PickerState). */
  onRecover?: () => void;
  pollMs?: number;
}

export interface PagedLibrary {
  snapshot: PagesSnapshot<LibraryImage>;
  ensureRange: (start: number, stop: number) => void;
  /** Retry everything that failed (pages here; thumbnails through onRecover). */
  retry: (page?: number) => void;
  reset: () => void;
  /** Images created after the picker opened, not yet shown (0 when none or unknown). */
  newerCount: number;
  /** newerCount is a lower bound (the API capped its count). */
  newerCapped: boolean;
  /**
   * Add the new images at the top. Returns how many items were inserted before the old first
   * item (the caller shifts the scroll by that), or null if the list was reloaded from the top instead.
   */
  showNewer: () => number | null;
  /** Ask now whether there are new images (focus, online). */
  checkNewer: () => void;
}

const isVisible = () => typeof document === "undefined" || document.visibilityState !== "hidden";

/**
 * The library's data, owned in one place: pages of a list frozen at the moment the picker opened
 * (PageLoader + head cursor), recovery from outages (online / visibilitychange events), and a poll
 * for images added since (newer_than), shown only when the user asks.
 */
export function usePagedLibrary(source: LibrarySource, initialIndex = 0): PagedLibrary {
  const { apiBase, pageSize } = source;
  const latest = useRef(source);
  latest.current = source;
  // A different list (filters) is a different loader; headers and fetch functions are read when used.
  const filterKey = JSON.stringify(source.request?.filters ?? {});
  const loader = useMemo(
    () => {
      const made = new PageLoader<LibraryImage>({
        pageSize,
        fetchPage: (page, size, signal, until) => {
          const { fetchPage, request } = latest.current;
          if (fetchPage) return fetchPage(page, size, signal, until);
          return fetchLibraryPage(apiBase, page, size, signal, until, request);
        },
      });
      // The first page the server put into the HTML is there before the first render: the first
      // commit already has the cells (no effect, promise and second render before the first screen).
      const inline = source.fetchPage ? null : takeInlineFirstPage(apiBase, pageSize, source.request);
      if (inline) made.accept(0, pageResult(inline));
      return made;
    },
    [apiBase, pageSize, filterKey], // eslint-disable-line react-hooks/exhaustive-deps -- filterKey stands for the filters
  );
  const snapshot = useSyncExternalStore(loader.subscribe, loader.getSnapshot, loader.getSnapshot);

  useEffect(() => {
    loader.start();
    // The first page on open (it also tells us the total and the bound), plus the page a restored scroll position needs.
    loader.ensurePage(0);
    loader.ensurePage(Math.floor(initialIndex / pageSize));
    return () => loader.stop();
  }, [loader]); // eslint-disable-line react-hooks/exhaustive-deps -- initialIndex only matters on open

  const [newer, setNewer] = useState<NewerImages | null>(null);
  const headCursor = snapshot.headCursor;
  const polling = useRef<AbortController | null>(null);
  // An empty library asks page 0 again on the same poll (it has no head, or one whose notice could not show).
  const empty = snapshot.total === 0;
  const checkNewer = useCallback(() => {
    if (!isVisible()) return;
    // An empty list asks its first page again: it may have no head, and a "new images" notice
    // could not show over the empty state (a library emptied while open still has its old head).
    if (empty) {
      loader.recheckEmpty();
      return;
    }
    if (!headCursor) return;
    if (polling.current) return;
    const ctrl = new AbortController();
    polling.current = ctrl;
    // A poll that never answers must not block every later one (they wait for this one to end).
    const deadline = setTimeout(() => {
      ctrl.abort();
      if (polling.current === ctrl) polling.current = null;
    }, PAGE_TIMEOUT_MS);
    const fetchNewer: FetchNewer =
      latest.current.fetchNewer ??
      ((cursor, limit, signal) => fetchNewerImages(apiBase, cursor, limit, signal, latest.current.request));
    // A host's fetchNewer may throw instead of rejecting, or answer something else: no exception out
    // of the timer or focus listener, and nothing announced that "Show" could not add.
    new Promise<NewerImages>((resolve) => resolve(fetchNewer(headCursor, NEWER_LIMIT, ctrl.signal)))
      .then((found) => {
        const usable = Array.isArray(found?.images) && typeof found.count === "number";
        if (!ctrl.signal.aborted) setNewer(usable && found.count > 0 ? found : null);
      })
      .catch(() => {
        // A failed poll is not worth a message: the next one (or the next page) will tell.
      })
      .finally(() => {
        clearTimeout(deadline);
        if (polling.current === ctrl) polling.current = null;
      });
  }, [apiBase, headCursor, empty, loader]);

  useEffect(() => {
    setNewer(null); // a new head (after showNewer or a reload): the old answer is stale
    if (!headCursor && !empty) return;
    const timer = setInterval(checkNewer, latest.current.pollMs ?? NEWER_POLL_MS);
    return () => {
      clearInterval(timer);
      polling.current?.abort();
      polling.current = null;
    };
  }, [headCursor, empty, checkNewer]);

  // Recovery without a click: the connection came back, or the user came back to the tab.
  useEffect(() => {
    const wake = (reason: "online" | "visible") => {
      loader.wake(reason);
      latest.current.onRecover?.();
      checkNewer();
    };
    const onOnline = () => wake("online");
    const onVisibility = () => {
      if (isVisible()) wake("visible");
    };
    window.addEventListener("online", onOnline);
    window.addEventListener("focus", checkNewer);
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      window.removeEventListener("online", onOnline);
      window.removeEventListener("focus", checkNewer);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [loader, checkNewer]);

  const ensureRange = useCallback((start: number, stop: number) => loader.ensureRange(start, stop), [loader]);
  const retry = useCallback(
    (page?: number) => {
      loader.retry(page);
      if (page === undefined) latest.current.onRecover?.();
    },
    [loader],
  );
  const reset = useCallback(() => {
    loader.reset();
    loader.ensurePage(0);
  }, [loader]);
  const showNewer = useCallback((): number | null => {
    if (!newer) return 0;
    setNewer(null);
    if (newer.capped || newer.count > newer.images.length || !newer.headCursor) {
      reset(); // too many to add in place (or no cursor to continue from): start over from the top
      return null;
    }
    loader.prepend(newer.images, newer.headCursor);
    return newer.images.length;
  }, [loader, newer, reset]);

  return { snapshot, ensureRange, retry, reset, newerCount: newer?.count ?? 0, newerCapped: newer?.capped ?? false, showNewer, checkNewer };
}
