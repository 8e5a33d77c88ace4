/**
 * Dev-only mock of GET /api/library/images and its images, as a Vite dev-server middleware.
 * `apply: "serve"` keeps it out of `vite build` (it also serves `vite preview`); nothing in src/ imports it.
 *
 * Env knobs: MOCK_TOTAL (default 1234), MOCK_LATENCY ms for JSON (default 80), MOCK_IMG_LATENCY ms
 * (default 60), MOCK_FAIL_RATE 0..1 of 503 answers for pages > 0 (default 0), MOCK_NEW_PER_MIN images
 * "ingested" per minute while it runs (default 0), served through head_cursor / until / newer_than.
 * Every 97th image has no thumbnail (fallback to full) and every 89th a broken one (404).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Plugin } from "vite";

const TOTAL = Number(process.env.MOCK_TOTAL ?? 1234);
const LATENCY = Number(process.env.MOCK_LATENCY ?? 80);
const IMG_LATENCY = Number(process.env.MOCK_IMG_LATENCY ?? 60);
const FAIL_RATE = Number(process.env.MOCK_FAIL_RATE ?? 0);
const NEW_PER_MIN = Number(process.env.MOCK_NEW_PER_MIN ?? 0);
const STARTED = Date.now();

function colorFor(id: number): string {
  const h = (id * 47) % 360;
  // HSL -> hex, so the mock returns "#rrggbb" like the real API.
  const s = 0.45, l = 0.55;
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    const c = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(c * 255).toString(16).padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

function image(id: number) {
  const thumb = id % 97 === 0 ? null : id % 89 === 0 ? `/__mock/missing/${id}.svg` : `/__mock/thumb/${id}.svg`;
  return {
    id,
    url: `/__mock/full/${id}.svg`,
    thumbnail_url: thumb,
    created_at: new Date(Date.UTC(2025, 0, 1) + id * 3600_000).toISOString(),
    width: 1024,
    height: 768,
    color: colorFor(id),
    pipeline_id: `p${id % 7}`,
    step: id % 2 ? "upscale" : "generate",
    thumbnail_status: thumb ? "ready" : "missing",
  };
}

function svg(id: number, size: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${(size * 3) / 4}" viewBox="0 0 400 300">
<rect width="400" height="300" fill="${colorFor(id)}"/><circle cx="${(id * 37) % 400}" cy="150" r="90" fill="#fff" opacity=".35"/>
<text x="200" y="170" font-size="64" text-anchor="middle" fill="#fff" font-family="sans-serif">${id}</text></svg>`;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function handle(req: IncomingMessage, res: ServerResponse, next: () => void) {
  const url = new URL(req.url ?? "/", "http://mock");
  if (url.pathname === "/api/library/images") {
    await delay(LATENCY);
    const limit = Math.min(200, Math.max(1, Number(url.searchParams.get("limit") ?? 50)));
    const offset = Math.max(0, Number(url.searchParams.get("offset") ?? 0));
    res.setHeader("Content-Type", "application/json");
    if (offset > 0 && Math.random() < FAIL_RATE) {
      res.statusCode = 503;
      res.setHeader("Retry-After", "2");
      res.end(JSON.stringify({ error: "unavailable", detail: "mock failure" }));
      return;
    }
    // Newest first; ids TOTAL+1.. are "ingested while open" (MOCK_NEW_PER_MIN per minute since start).
    // A cursor is an image id: until=<id> keeps that image and older, newer_than=<id> only newer ones.
    const newest = TOTAL + Math.floor(((Date.now() - STARTED) / 60_000) * NEW_PER_MIN);
    const until = url.searchParams.get("until");
    const newerThan = url.searchParams.get("newer_than");
    const top = until !== null ? Math.min(newest, Number(until)) : newest;
    const bottom = newerThan !== null ? Number(newerThan) + 1 : 1;
    const count = Math.max(0, top - bottom + 1);
    const images = [];
    for (let i = offset; i < Math.min(count, offset + limit); i++) images.push(image(top - i));
    const nextOffset = offset + limit < count ? String(offset + limit) : null;
    const body = {
      images,
      total: newest,
      limit,
      offset,
      next_cursor: nextOffset,
      head_cursor: images[0] ? String(images[0].id) : null,
      ...(newerThan !== null ? { count } : {}),
    };
    res.end(JSON.stringify(body));
    return;
  }
  const m = /^\/__mock\/(thumb|full|missing)\/(\d+)\.svg$/.exec(url.pathname);
  if (m) {
    await delay(IMG_LATENCY);
    if (m[1] === "missing") {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader("Content-Type", "image/svg+xml");
    res.setHeader("Cache-Control", "public, max-age=31536000, immutable");
    res.end(svg(Number(m[2]), m[1] === "thumb" ? 200 : 1024));
    return;
  }
  next();
}

export function mockLibraryApi(): Plugin {
  return {
    name: "thumbs-mock-library-api",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use((req, res, next) => void handle(req, res, next));
    },
    // `npm run preview` serves the production bundle against the same mock.
    configurePreviewServer(server) {
      server.middlewares.use((req, res, next) => void handle(req, res, next));
    },
  };
}
