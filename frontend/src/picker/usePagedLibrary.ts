import { useCallback, useEffect, useMemo, useSyncExternalStore } from "react";
import { fetchLibraryPage } from "./api";
import { PageLoader, type PagesSnapshot } from "./pageLoader";
import type { LibraryImage } from "./types";

export interface PagedLibrary {
  snapshot: PagesSnapshot<LibraryImage>;
  ensureRange: (start: number, stop: number) => void;
  retry: (page?: number) => void;
  reset: () => void;
}

/** Library pages for the grid, loaded on demand by page number (see PageLoader). */
export function usePagedLibrary(apiBase: string, pageSize: number, initialIndex = 0): PagedLibrary {
  const loader = useMemo(
    () =>
      new PageLoader<LibraryImage>({
        pageSize,
        fetchPage: (page, size, signal) => fetchLibraryPage(apiBase, page, size, signal),
      }),
    [apiBase, pageSize],
  );
  const snapshot = useSyncExternalStore(loader.subscribe, loader.getSnapshot, loader.getSnapshot);

  useEffect(() => {
    loader.start();
    // The first page on open (it also tells us the total), plus the page a restored scroll position needs.
    loader.ensurePage(0);
    loader.ensurePage(Math.floor(initialIndex / pageSize));
    return () => loader.stop();
  }, [loader]); // eslint-disable-line react-hooks/exhaustive-deps -- initialIndex only matters on open

  const ensureRange = useCallback((start: number, stop: number) => loader.ensureRange(start, stop), [loader]);
  const retry = useCallback((page?: number) => loader.retry(page), [loader]);
  const reset = useCallback(() => {
    loader.reset();
    loader.ensurePage(0);
  }, [loader]);
  return { snapshot, ensureRange, retry, reset };
}
