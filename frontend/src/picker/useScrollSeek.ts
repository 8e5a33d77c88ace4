import { useLayoutEffect, useRef, useState, type RefObject } from "react";
import type { GridImperativeAPI } from "react-window";
import { ScrollSeek, type SeekMode } from "./scrollSeek";

/** The grid's scroll-seek mode (scrollSeek.ts): re-renders only when the mode changes. */
export function useScrollSeek(gridRef: RefObject<GridImperativeAPI | null>): SeekMode {
  const [mode, setMode] = useState<SeekMode>("normal");
  const seek = useRef<ScrollSeek | null>(null);
  seek.current ??= new ScrollSeek();
  const attached = useRef<HTMLElement | null>(null);
  const handler = useRef<((event: Event) => void) | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const lastScroll = useRef(0);

  if (handler.current === null) {
    const onIdle = () => {
      timer.current = null;
      const now = performance.now();
      const next = seek.current!.idle(now, lastScroll.current);
      if (next === "seeking") timer.current = setTimeout(onIdle, seek.current!.settleAfter() - (now - lastScroll.current));
      setMode(next);
    };
    handler.current = (event: Event) => {
      const el = event.currentTarget as HTMLElement;
      lastScroll.current = performance.now();
      const next = seek.current!.scrolled(el.scrollTop, lastScroll.current);
      if (next === "seeking" && timer.current === null) timer.current = setTimeout(onIdle, seek.current!.settleAfter());
      setMode(next); // the same mode again does not re-render
    };
  }

  // After every commit (cheap): the grid element comes and goes with the status panels.
  useLayoutEffect(() => {
    const el = gridRef.current?.element ?? null;
    if (el === attached.current) return;
    attached.current?.removeEventListener("scroll", handler.current!);
    el?.addEventListener("scroll", handler.current!, { passive: true });
    attached.current = el;
  });
  useLayoutEffect(
    () => () => {
      attached.current?.removeEventListener("scroll", handler.current!);
      attached.current = null; // so a remount (StrictMode's included) attaches again
      if (timer.current !== null) clearTimeout(timer.current);
      timer.current = null;
    },
    [],
  );
  return mode;
}
