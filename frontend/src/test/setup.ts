/**
 * Test environment for component tests (jsdom): a ResizeObserver that tests drive by hand, since
 * jsdom has no layout. `resizeAll(width, height)` reports a new content box for every observed element.
 */
type Observed = { observer: FakeResizeObserver; target: Element };
const observed = new Set<Observed>();

class FakeResizeObserver {
  private readonly callback: ResizeObserverCallback;
  constructor(callback: ResizeObserverCallback) {
    this.callback = callback;
  }
  observe(target: Element) {
    observed.add({ observer: this, target });
    const size = (globalThis as { __testSize?: { width: number; height: number } }).__testSize;
    if (size) queueMicrotask(() => this.report(target, size.width, size.height));
  }
  unobserve(target: Element) {
    for (const o of observed) if (o.observer === this && o.target === target) observed.delete(o);
  }
  disconnect() {
    for (const o of observed) if (o.observer === this) observed.delete(o);
  }
  report(target: Element, width: number, height: number) {
    const entry = { target, contentRect: { width, height, top: 0, left: 0, bottom: height, right: width, x: 0, y: 0 } };
    this.callback([entry as unknown as ResizeObserverEntry], this as unknown as ResizeObserver);
  }
}

export function resizeAll(width: number, height: number): void {
  (globalThis as { __testSize?: { width: number; height: number } }).__testSize = { width, height };
  for (const o of [...observed]) o.observer.report(o.target, width, height);
}

if (typeof window !== "undefined") {
  (window as unknown as { ResizeObserver: unknown }).ResizeObserver = FakeResizeObserver;
}

if (typeof window !== "undefined") {
  // jsdom has no scrolling: scrollTo moves scrollTop and fires the scroll event, as a browser would.
  Element.prototype.scrollTo = function scrollTo(this: Element, arg?: ScrollToOptions | number, y?: number) {
    const options = typeof arg === "number" ? { left: arg, top: y } : (arg ?? {});
    if (options.top !== undefined) this.scrollTop = options.top;
    if (options.left !== undefined) this.scrollLeft = options.left;
    this.dispatchEvent(new Event("scroll"));
  } as Element["scrollTo"];
}
