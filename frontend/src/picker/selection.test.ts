import { describe, expect, it } from "vitest";
import { nextSelection, selectAllLoaded, type Selection } from "./selection";
import type { LibraryImage } from "./types";

const image = (id: number, url: string): LibraryImage => ({
  id,
  url,
  thumbnail_url: null,
  created_at: "2025-01-01T00:00:00Z",
  width: null,
  height: null,
  color: null,
  pipeline_id: null,
  step: null,
});

// A legacy writer's rows between good ones: none of these may reach the host's onSelect.
const items = [
  image(1, "https://cdn.test/a.png"),
  image(2, "javascript:alert(1)"),
  image(3, "/library/c.png"),
  image(4, "file:///etc/passwd"),
  image(5, "https://cdn.test/e.png"),
];
const none: Selection = new Map();

describe("selection", () => {
  it("never selects an image whose url is not a web address", () => {
    expect([...nextSelection(none, items, 1, null, "replace", false).keys()]).toEqual([]);
    expect([...nextSelection(none, items, 3, null, "toggle", true).keys()]).toEqual([]);
    const chosen = nextSelection(none, items, 0, null, "replace", false);
    expect(nextSelection(chosen, items, 1, null, "replace", false)).toBe(chosen);
  });

  it("a Shift-range and select-all skip them and keep the others", () => {
    expect([...nextSelection(none, items, 4, 0, "range", true).keys()]).toEqual([
      "https://cdn.test/a.png",
      "/library/c.png",
      "https://cdn.test/e.png",
    ]);
    expect([...selectAllLoaded(none, [...items, undefined]).keys()]).toEqual([
      "https://cdn.test/a.png",
      "/library/c.png",
      "https://cdn.test/e.png",
    ]);
  });

  it("web addresses select as before: replace, toggle on and off", () => {
    expect([...nextSelection(none, items, 4, null, "replace", false).keys()]).toEqual(["https://cdn.test/e.png"]);
    const on = nextSelection(none, items, 0, null, "toggle", true);
    expect([...on.keys()]).toEqual(["https://cdn.test/a.png"]);
    expect([...nextSelection(on, items, 0, null, "toggle", true).keys()]).toEqual([]);
  });
});
