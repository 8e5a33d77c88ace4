import { describe, expect, it } from "vitest";
import { nextIndex } from "./keyboard";

// 7 columns, 24 items: rows 0..3, the last row holds items 21..23.
const ctx = { columnCount: 7, itemCount: 24, pageRows: 2 };
const k = (key: string, ctrlKey = false) => ({ key, ctrlKey });

describe("nextIndex", () => {
  it("moves one cell with the arrows, wrapping across rows", () => {
    expect(nextIndex(0, k("ArrowRight"), ctx)).toBe(1);
    expect(nextIndex(6, k("ArrowRight"), ctx)).toBe(7);
    expect(nextIndex(7, k("ArrowLeft"), ctx)).toBe(6);
    expect(nextIndex(0, k("ArrowLeft"), ctx)).toBe(0);
    expect(nextIndex(23, k("ArrowRight"), ctx)).toBe(23);
  });
  it("moves a row with Up/Down and stays put when there is no cell", () => {
    expect(nextIndex(3, k("ArrowDown"), ctx)).toBe(10);
    expect(nextIndex(10, k("ArrowUp"), ctx)).toBe(3);
    expect(nextIndex(3, k("ArrowUp"), ctx)).toBe(3);
    expect(nextIndex(16, k("ArrowDown"), ctx)).toBe(23);
    expect(nextIndex(19, k("ArrowDown"), ctx)).toBe(19); // nothing below in the ragged row
  });
  it("Home/End go to the row's ends, with Ctrl to the grid's", () => {
    expect(nextIndex(10, k("Home"), ctx)).toBe(7);
    expect(nextIndex(10, k("End"), ctx)).toBe(13);
    expect(nextIndex(22, k("End"), ctx)).toBe(23);
    expect(nextIndex(10, k("Home", true), ctx)).toBe(0);
    expect(nextIndex(10, k("End", true), ctx)).toBe(23);
    expect(nextIndex(10, { key: "End", metaKey: true }, ctx)).toBe(23);
  });
  it("PageUp/PageDown move a screen of rows in the same column", () => {
    expect(nextIndex(2, k("PageDown"), ctx)).toBe(16);
    expect(nextIndex(16, k("PageDown"), ctx)).toBe(23); // column 2 not on the last row -> last item
    expect(nextIndex(8, k("PageDown"), ctx)).toBe(22);
    expect(nextIndex(22, k("PageUp"), ctx)).toBe(8);
    expect(nextIndex(8, k("PageUp"), ctx)).toBe(1);
  });
  it("ignores other keys and empty grids", () => {
    expect(nextIndex(3, k("a"), ctx)).toBeNull();
    expect(nextIndex(0, k("ArrowRight"), { ...ctx, itemCount: 0 })).toBeNull();
    expect(nextIndex(0, k("ArrowRight"), { ...ctx, columnCount: 0 })).toBeNull();
  });
  it("clamps a stale index to the last item", () => {
    expect(nextIndex(500, k("ArrowLeft"), ctx)).toBe(22);
  });
});
