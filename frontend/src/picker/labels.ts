import type { LibraryImage } from "./types";

/** Accessible name for a cell, built from the image's metadata (no filename is exposed by the API). */
export function imageLabel(image: LibraryImage): string {
  const parts = [`Image ${image.id}`];
  if (image.step) parts.push(image.step);
  if (image.pipeline_id) parts.push(`pipeline ${image.pipeline_id}`);
  if (image.width && image.height) parts.push(`${image.width}×${image.height}`);
  const created = new Date(image.created_at);
  if (!Number.isNaN(created.getTime())) {
    parts.push(`created ${created.toISOString().slice(0, 16).replace("T", " ")} UTC`);
  }
  return parts.join(", ");
}
