import { memo, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { LibraryImage } from "./types";

// Module-level memory for the session: remounted cells (scrolled back into view) skip the fade for
// URLs the browser has already decoded, and skip straight to the fallback for thumbnails that failed.
const decoded = new Set<string>();
const brokenThumbs = new Set<string>();

type Stage = "thumb" | "full" | "error";

// A thumbnail that fails is usually a busy proxy (503 while it catches up on a cold cache), and
// the fallback original costs megabytes: retry the thumbnail before giving up on it.
export const THUMB_RETRY_DELAYS_MS = [400, 1500];

function firstStage(image: LibraryImage): Stage {
  return image.thumbnail_url && !brokenThumbs.has(image.thumbnail_url) ? "thumb" : "full";
}

export interface ThumbProps {
  image: LibraryImage;
  /** Rendered edge in CSS px, used for the width/height attributes. */
  size: number;
  /** First screen: eager with high fetch priority; everything else lazy. */
  eager: boolean;
}

/**
 * The thumbnail (or, if it is missing or broken, the full image constrained by CSS). The tile
 * behind it is painted in the image's placeholder colour, so "loading" needs no extra element.
 */
export const Thumb = memo(function Thumb({ image, size, eager }: ThumbProps) {
  const [stage, setStage] = useState<Stage>(() => firstStage(image));
  const [attempt, setAttempt] = useState(0);
  const [retrying, setRetrying] = useState(false);
  useEffect(() => {
    if (!retrying) return;
    const timer = setTimeout(() => {
      setRetrying(false);
      setAttempt((n) => n + 1);
    }, THUMB_RETRY_DELAYS_MS[attempt]);
    return () => clearTimeout(timer);
  }, [retrying, attempt]);
  if (retrying) return null; // the tile's placeholder colour shows meanwhile
  if (stage === "error") {
    return (
      <span className="tp-broken" aria-hidden="true">
        <span className="tp-broken-icon">!</span>
        Unavailable
      </span>
    );
  }
  const src = stage === "thumb" && image.thumbnail_url ? image.thumbnail_url : image.url;
  const onError = () => {
    if (stage === "thumb" && attempt < THUMB_RETRY_DELAYS_MS.length) {
      setRetrying(true);
    } else if (stage === "thumb") {
      brokenThumbs.add(src);
      setStage("full");
    } else {
      setStage("error");
    }
  };
  // key: a new <img> per source and attempt, so a retry or fallback never inherits the failed element's state.
  return <Img key={`${attempt}:${src}`} src={src} size={size} eager={eager} onError={onError} />;
});

function Img({ src, size, eager, onError }: { src: string; size: number; eager: boolean; onError: () => void }) {
  const [loaded, setLoaded] = useState(() => decoded.has(src));
  const ref = useRef<HTMLImageElement>(null);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    // StrictMode's simulated unmount removed src below; put it back on the re-run.
    if (!el.getAttribute("src")) el.setAttribute("src", src);
    // Detaching an <img> does not cancel its download; removing src does. Layout cleanup runs
    // while the element is still attached, before the row leaves the DOM.
    return () => {
      if (!el.complete) el.removeAttribute("src");
    };
  }, [src]);
  return (
    <img
      ref={ref}
      className={loaded ? "tp-img tp-loaded" : "tp-img"}
      alt=""
      draggable={false}
      width={size}
      height={size}
      decoding="async"
      // loading before src: Firefox reads it when src is set.
      loading={eager ? "eager" : "lazy"}
      fetchPriority={eager ? "high" : "auto"}
      src={src}
      onLoad={() => {
        decoded.add(src);
        setLoaded(true);
      }}
      onError={onError}
    />
  );
}
