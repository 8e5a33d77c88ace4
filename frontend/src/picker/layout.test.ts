import { describe, expect, it } from "vitest";
import {
  anchorRowFor,
  cellSizeFor,
  columnCountFor,
  itemRangeForRows,
  pagesForRange,
  rowCountFor,
  visibleRowsFor,
} from "./layout";

const opts = { minCellSize: 160, minColumns: 2, maxColumns: 10 };

describe("columnCountFor", () => {
  it("is 0 before the width is known", () => {
    expect(columnCountFor(0, opts)).toBe(0);
    expect(columnCountFor(Number.NaN, opts)).toBe(0);
  });
  it("keeps at least two columns on a phone", () => {
    expect(columnCountFor(320, opts)).toBe(2);
    expect(columnCountFor(240, opts)).toBe(2); // narrower than two min cells: cells shrink instead
    expect(columnCountFor(390, opts)).toBe(2);
  });
  it("adds columns as the width grows, up to the cap", () => {
    expect(columnCountFor(480, opts)).toBe(3);
    expect(columnCountFor(1265, opts)).toBe(7);
    expect(columnCountFor(1280, opts)).toBe(8);
    expect(columnCountFor(1920, opts)).toBe(10);
    expect(columnCountFor(5000, opts)).toBe(10);
  });
  it("never leaves cells smaller than the minimum when above the floor", () => {
    for (let w = 320; w <= 1600; w += 7) {
      const c = columnCountFor(w, opts);
      expect(cellSizeFor(w, c)).toBeGreaterThanOrEqual(160);
    }
  });
});

describe("cellSizeFor", () => {
  it("fills the width without exceeding it", () => {
    for (const [w, c] of [[1265, 7], [1000, 6], [333, 2]] as const) {
      const size = cellSizeFor(w, c);
      expect(size * c).toBeLessThanOrEqual(w);
      expect(w - size * c).toBeLessThan(0.01 * c + 1e-9);
    }
  });
  it("is 0 without columns", () => {
    expect(cellSizeFor(800, 0)).toBe(0);
  });
});

describe("rows", () => {
  it("counts a ragged last row", () => {
    expect(rowCountFor(1100, 7)).toBe(158);
    expect(rowCountFor(1099, 7)).toBe(157);
    expect(rowCountFor(0, 7)).toBe(0);
    expect(rowCountFor(10, 0)).toBe(0);
  });
  it("pages by whole rows, at least one", () => {
    expect(visibleRowsFor(800, 180)).toBe(4);
    expect(visibleRowsFor(100, 180)).toBe(1);
    expect(visibleRowsFor(800, 0)).toBe(1);
  });
});

describe("anchorRowFor", () => {
  it("keeps the top item's row when the column count changes", () => {
    // item 210 at the top of a 7-column grid -> row 52 in a 4-column grid (items 208..211)
    expect(anchorRowFor(210, 4, 300)).toBe(52);
    expect(anchorRowFor(210, 7, 300)).toBe(30);
  });
  it("clamps to the last row", () => {
    expect(anchorRowFor(5000, 4, 10)).toBe(9);
    expect(anchorRowFor(-3, 4, 10)).toBe(0);
  });
});

describe("itemRangeForRows", () => {
  it("maps rows to items, clamped to the item count", () => {
    expect(itemRangeForRows(0, 3, 7, 1100)).toEqual([0, 27]);
    expect(itemRangeForRows(155, 160, 7, 1100)).toEqual([1085, 1099]);
    expect(itemRangeForRows(200, 210, 7, 1100)).toBeNull();
    expect(itemRangeForRows(0, 3, 0, 1100)).toBeNull();
  });
});

describe("pagesForRange", () => {
  it("lists every page overlapping the range, once", () => {
    expect(pagesForRange(0, 49, 50)).toEqual([0]);
    expect(pagesForRange(49, 50, 50)).toEqual([0, 1]);
    expect(pagesForRange(120, 260, 50)).toEqual([2, 3, 4, 5]);
  });
  it("stops at the total", () => {
    expect(pagesForRange(1000, 1300, 50, 1100)).toEqual([20, 21]);
    expect(pagesForRange(1200, 1300, 50, 1100)).toEqual([]);
  });
  it("ignores negative starts and empty ranges", () => {
    expect(pagesForRange(-20, 10, 50)).toEqual([0]);
    expect(pagesForRange(10, 5, 50)).toEqual([]);
  });
  it("rejects a bad page size", () => {
    expect(() => pagesForRange(0, 10, 0)).toThrow(RangeError);
  });
});
