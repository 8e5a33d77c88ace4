/**
 * Scroll-seek: while the view moves fast, cells show a flat placeholder (the image's colour, no
 * <img>, no rounded clipped layer) instead of the tile; the tile comes back once the scroll slows or
 * stops. Framework-free: the picker feeds it scroll positions and times, and asks it when to look again.
 *
 * At 6x CPU most of a fast wheel scroll's long tasks were the browser's own style, layout and raster
 * of the tiles passing by (rounded, clipped, each with an <img>), not React.
 */

/** Enter seek mode above this speed (px/ms): 3,000 px/s, a 160 px cell passes in about 50 ms. */
export const SEEK_ENTER_PX_PER_MS = 3;
/** Leave it when the speed drops under this (a fling slowing down). */
export const SEEK_EXIT_PX_PER_MS = 1;
/**
 * ...or when no scroll event has come for this long, or for 1.5 gaps between the last two events if
 * longer (a slow CPU delivers them once a long frame): the scroll stopped.
 */
export const SEEK_SETTLE_MS = 80;
/** Speed is measured over at least this span (scroll events come once a frame, frames vary). */
const SPEED_WINDOW_MS = 100;
/** A scroll event after this long without one starts a new scroll (no speed from before the rest). */
const REST_MS = 1000;

export type SeekMode =
  /** Tiles as usual (and thumbnails off the first screen wait THUMB_DEFER_MS before loading). */
  | "normal"
  /** Moving fast: placeholders. */
  | "seeking"
  /** A fast scroll just ended: tiles, and the cells left in view load their thumbnails at once. */
  | "settled";

export class ScrollSeek {
  private samples: { top: number; time: number }[] = [];
  private mode: SeekMode = "normal";
  private lastGap = 0;
  /** Scroll events since the last rest. */
  private events = 0;

  getMode(): SeekMode {
    return this.mode;
  }

  /** A scroll event: the view's scrollTop at `time` (ms). Returns the mode now. */
  scrolled(top: number, time: number): SeekMode {
    const last = this.samples[this.samples.length - 1];
    if (last && time - last.time > REST_MS) {
      this.samples = [];
      this.events = 0;
    }
    this.events += 1;
    this.lastGap = last && this.samples.length > 0 ? time - last.time : 0;
    this.samples.push({ top, time });
    // Keep one sample at least SPEED_WINDOW_MS old, drop the older ones.
    while (this.samples.length > 2 && time - this.samples[1]!.time >= SPEED_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const span = time - first.time;
    if (this.samples.length < 2 || span <= 0) {
      // The first event of a scroll: no speed yet.
      if (this.mode === "settled") this.mode = "normal";
      return this.mode;
    }
    const speed = Math.abs(top - first.top) / span;
    if (this.mode === "seeking") {
      if (speed < SEEK_EXIT_PX_PER_MS) this.mode = "settled";
    } else if (speed > SEEK_ENTER_PX_PER_MS && this.events >= 3) {
      // Three events at least: two jumps (scrollToRow, Ctrl+End and back, a test's scrollTop) are not a scroll.
      this.mode = "seeking";
    } else {
      this.mode = "normal";
    }
    return this.mode;
  }

  /** How long without a scroll event means the scroll stopped. */
  settleAfter(): number {
    return Math.max(SEEK_SETTLE_MS, 1.5 * this.lastGap);
  }

  /** No scroll event since `lastScroll` until `time`: a fast scroll that stopped is settled. */
  idle(time: number, lastScroll: number): SeekMode {
    if (this.mode === "seeking" && time - lastScroll >= this.settleAfter()) {
      this.mode = "settled";
      this.samples = [];
      this.events = 0;
    }
    return this.mode;
  }
}
