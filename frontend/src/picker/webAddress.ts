/** http(s), protocol-relative or same-origin: what an <img> may load and what a host may be handed. */
export function isWebAddress(url: string | null | undefined): url is string {
  return typeof url === "string" && (/^https?:\/\//i.test(url) || /^\/(?!\\)/.test(url));
}
