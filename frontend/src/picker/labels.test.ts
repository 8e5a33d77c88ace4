import { describe, expect, it } from "vitest";
import { imageLabel } from "./labels";
import type { LibraryImage } from "./types";

const image = (over: Partial<LibraryImage>): LibraryImage => ({
  id: 7,
  url: "/full/7.jpg",
  thumbnail_url: "/t/7.jpg",
  created_at: "2026-01-02T03:04:05Z",
  width: 800,
  height: 600,
  color: null,
  pipeline_id: "p1",
  step: "upscale",
  ...over,
});

describe("imageLabel", () => {
  it("names the image by id, step, pipeline, size and creation time", () => {
    expect(imageLabel(image({}))).toBe("Image 7, upscale, pipeline p1, 800×600, created 2026-01-02 03:04 UTC");
  });

  it("says nothing of a date a legacy row does not have (null is not 1970-01-01), nor of missing fields", () => {
    const bare = { width: null, height: null, pipeline_id: null, step: null };
    expect(imageLabel(image({ ...bare, created_at: null }))).toBe("Image 7");
    expect(imageLabel(image({ ...bare, created_at: "" }))).toBe("Image 7");
    expect(imageLabel(image({ ...bare, created_at: "garbage" }))).toBe("Image 7");
    expect(imageLabel(image({ ...bare, width: 0, height: 0 }))).toBe("Image 7, created 2026-01-02 03:04 UTC");
  });
});
