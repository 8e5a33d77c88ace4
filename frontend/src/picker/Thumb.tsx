import { memo, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { LibraryImage } from "./types";
import { isWebAddress } from "./webAddress";

// URLs the browser has decoded this session: remounted cells (scrolled back into view) skip the fade.
// Successes only: failures are never remembered beyond the mounted tile, so an outage cannot stick.
const decoded = new Set<string>();

/**
 * Backoff between attempts at a failing thumbnail (an <img> cannot read Retry-After). A bounded rate,
 * not a bounded count: past the list the tile tries every last delay while it is on screen, so it
 * recovers by itself after an outage of any length. Recovery signals (back online, tab visible again,
 * Retry, another thumbnail loading after a failure) make it try at once.
 */
export const THUMB_RETRY_DELAYS_MS = [400, 1500, 4000, 10_000, 30_000];
/** Failures after which the tile says in words that it cannot show the preview (it keeps retrying). */
export const UNAVAILABLE_AFTER = 2;
export const UNAVAILABLE_TEXT = "Preview unavailable";
/**
 * An attempt that has neither loaded nor failed by then counts as a failure (its download is
 * cancelled and the backoff goes on): a connection that stalls mid-image never fires `error`, and
 * the tile would show its placeholder colour for good, even after the server answers again.
 */
export const THUMB_TIMEOUT_MS = 30_000;
/**
 * A tile that is not first-screen and not already decoded asks for its thumbnail only once it has
 * stayed mounted this long: the cells a fast scroll passes over (mounted for a frame or two) start no
 * download, decode or request bookkeeping. At 6x CPU a fast wheel scroll over 1,100 images set src on
 * every cell passed (618 requests at Slow 3G, 571 of them cancelled) and that work was the long tasks.
 */
export const THUMB_DEFER_MS = 120;

/** What a tile shows: the thumbnail, or the original only for images that have no thumbnail at all. */
export function thumbSource(image: LibraryImage): string | undefined {
  // Never the original as a fallback for a failing thumbnail: it costs megabytes per tile.
  const src = image.cell_thumbnail_url ?? image.thumbnail_url ?? image.url;
  // Only a web address is ever an <img> source: a legacy row's url may be anything (javascript:, file:, junk).
  return isWebAddress(src) ? src : undefined;
}

export { isWebAddress };

/** The square cell at 1x and 2x: a 2x or 3x screen picks the 400 px one (>= 0.8 source px per device px). */
export function thumbSrcSet(image: LibraryImage): string | undefined {
  if (!image.cell_thumbnail_url || !image.cell_thumbnail_url_2x) return undefined;
  return `${image.cell_thumbnail_url} 200w, ${image.cell_thumbnail_url_2x} 400w`;
}

export interface ThumbProps {
  image: LibraryImage;
  /** Rendered edge in CSS px, used for the width/height attributes. */
  size: number;
  /** First screen: eager with high fetch priority; everything else lazy. */
  eager: boolean;
  /**
   * Off the first screen, wait THUMB_DEFER_MS mounted before asking (default). False: ask at once
   * (the cells left in view when a fast scroll stops). Read when the tile mounts.
   */
  defer?: boolean;
  /** Changes when failed thumbnails should try again at once (PickerState.recover). */
  recovery: number;
  /** The words for a tile that cannot be shown (translatable). */
  unavailableText?: string;
  /** Told whether the tile currently says "Preview unavailable" (the cell puts it in its label); false on unmount. */
  onUnavailable?: (id: number, unavailable: boolean) => void;
  /** The thumbnail loaded after failing: the server answers again (PickerState.thumbnailRecovered). */
  onRecovered?: () => void;
}

/**
 * The thumbnail. The tile behind it is painted in the image's placeholder colour, so "loading"
 * needs no extra element; a thumbnail that keeps failing says so in words.
 */
export const Thumb = memo(function Thumb(props: ThumbProps) {
  const { image, size, eager, defer = true, recovery, onUnavailable, onRecovered } = props;
  const { unavailableText = UNAVAILABLE_TEXT } = props;
  const src = thumbSource(image);
  const srcSet = thumbSrcSet(image);
  const [attempt, setAttempt] = useState(0); // key of the <img>: a fresh element per try
  const [failures, setFailures] = useState(0); // consecutive
  const [waiting, setWaiting] = useState(false);
  const [seenRecovery, setSeenRecovery] = useState(recovery);
  if (recovery !== seenRecovery) {
    // Recovery signal: forget the failures and try now (state adjusted during render, React's pattern).
    setSeenRecovery(recovery);
    if (failures > 0) {
      setFailures(0);
      setWaiting(false);
      setAttempt((n) => n + 1);
    }
  }
  useEffect(() => {
    if (!waiting) return;
    const delay = THUMB_RETRY_DELAYS_MS[Math.min(failures, THUMB_RETRY_DELAYS_MS.length) - 1];
    const timer = setTimeout(() => {
      // A hidden tab does not retry: the tile keeps waiting, and the recovery signal sent when the
      // tab is visible again (usePagedLibrary's visibilitychange) tries every waiting tile once.
      if (document.visibilityState === "hidden") return;
      setWaiting(false);
      setAttempt((n) => n + 1);
    }, delay);
    return () => clearTimeout(timer);
  }, [waiting, failures]);
  const unavailable = src === undefined || failures >= UNAVAILABLE_AFTER;
  useEffect(() => {
    onUnavailable?.(image.id, unavailable);
    return () => onUnavailable?.(image.id, false); // unmounted (or about to say otherwise)
  }, [onUnavailable, image.id, unavailable]);

  return (
    <>
      {!waiting && src !== undefined && (
        <Img
          key={`${attempt}:${src}`}
          src={src}
          srcSet={srcSet}
          size={size}
          eager={eager}
          defer={defer && !eager && attempt === 0}
          onLoad={() => {
            if (failures > 0) onRecovered?.();
            setFailures(0);
          }}
          onError={() => {
            setFailures((n) => n + 1);
            setWaiting(true);
          }}
        />
      )}
      {unavailable && (
        <span className="tp-broken">
          <span className="tp-broken-icon" aria-hidden="true">
            !
          </span>
          {unavailableText}
        </span>
      )}
    </>
  );
});

interface ImgProps {
  src: string;
  srcSet: string | undefined;
  size: number;
  eager: boolean;
  /** Wait THUMB_DEFER_MS before asking (a first attempt off the first screen); retries ask at once. */
  defer: boolean;
  onLoad: () => void;
  onError: () => void;
}

function Img({ src, srcSet, size, eager, defer, onLoad, onError }: ImgProps) {
  const [loaded, setLoaded] = useState(() => decoded.has(src));
  // Deferred unless it shows at once anyway (first screen, or already decoded this session).
  const [armed, setArmed] = useState(() => !defer || decoded.has(src));
  const ref = useRef<HTMLImageElement>(null);
  const settled = useRef(false);
  const latestOnError = useRef(onError);
  latestOnError.current = onError;
  useEffect(() => {
    if (armed) return;
    const timer = setTimeout(() => setArmed(true), THUMB_DEFER_MS);
    return () => clearTimeout(timer);
  }, [armed]);
  useEffect(() => {
    if (!armed) return;
    const timer = setTimeout(() => {
      if (!settled.current) latestOnError.current(); // the tile unmounts this <img>: its src goes
    }, THUMB_TIMEOUT_MS);
    return () => clearTimeout(timer);
  }, [armed]);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || !armed) return;
    // StrictMode's simulated unmount removed src below; put it back on the re-run.
    if (srcSet && !el.getAttribute("srcset")) el.setAttribute("srcset", srcSet);
    if (!el.getAttribute("src")) el.setAttribute("src", src);
    // Detaching an <img> does not cancel its download; removing src (and srcset, which
    // would pick a candidate again) does. Layout cleanup runs while the element is still
    // attached, before the row leaves the DOM.
    return () => {
      if (!el.complete) {
        el.removeAttribute("srcset");
        el.removeAttribute("src");
      }
    };
  }, [src, srcSet, armed]);
  return (
    <img
      ref={ref}
      className={`tp-img${loaded ? " tp-loaded" : ""}${eager ? " tp-first-screen" : ""}`}
      alt=""
      draggable={false}
      width={size}
      height={size}
      decoding="async"
      // loading before src: Firefox reads it when src is set.
      loading={eager ? "eager" : "lazy"}
      fetchPriority={eager ? "high" : "auto"}
      // srcset and sizes before src, so the browser chooses once.
      srcSet={armed ? srcSet : undefined}
      sizes={srcSet ? `${Math.round(size)}px` : undefined}
      src={armed ? src : undefined}
      onLoad={() => {
        settled.current = true;
        decoded.add(src);
        setLoaded(true);
        onLoad();
      }}
      onError={() => {
        settled.current = true;
        onError();
      }}
    />
  );
}
