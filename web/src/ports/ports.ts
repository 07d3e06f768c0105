/**
 * Ports without React: the shape the hub lists (`GET …/ports` and the
 * `ports` event), reading an event's data, and mapping a terminal link such
 * as `http://localhost:8000/x` to the port whose preview it means.
 */
import type { ForwardedPort } from "../api/types";

function isPort(value: unknown): value is ForwardedPort {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.port === "number" &&
    (p.visibility === "private" || p.visibility === "public") &&
    typeof p.preview_url === "string" &&
    (p.address === undefined || typeof p.address === "string") &&
    (p.process === undefined || p.process === null || typeof p.process === "string")
  );
}

/** The list a `ports` event carries, sorted by port; null when it is not one. */
export function parsePorts(value: unknown): ForwardedPort[] | null {
  if (!Array.isArray(value)) return null;
  return sortPorts(value.filter(isPort));
}

/** Decode a `ports` event's `data:`. */
export function parsePortsEvent(data: string): ForwardedPort[] | null {
  try {
    return parsePorts(JSON.parse(data));
  } catch {
    return null;
  }
}

export function sortPorts(ports: readonly ForwardedPort[]): ForwardedPort[] {
  return [...ports].sort((a, b) => a.port - b.port);
}

/** Replace one port in the list (after a PATCH), keeping the order. */
export function replacePort(ports: readonly ForwardedPort[], updated: ForwardedPort): ForwardedPort[] {
  return sortPorts(ports.some((p) => p.port === updated.port) ? ports.map((p) => (p.port === updated.port ? { ...p, ...updated } : p)) : [...ports, updated]);
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "0.0.0.0", "[::1]", "[::]"]);

/**
 * The VM port a link names when it points at the VM's own loopback
 * (`localhost:PORT`, `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`); null
 * for any other link. A link without a port means 80 (or 443 for https).
 */
export function portFromLink(uri: string): number | null {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : `http://${uri}`);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (!LOCAL_HOSTS.has(url.hostname.toLowerCase())) return null;
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : null;
}

/** The path, query and fragment of a link, to carry over to its preview ("/" when there are none). */
export function linkPath(uri: string): string {
  try {
    const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : `http://${uri}`);
    return `${url.pathname}${url.search}${url.hash}`;
  } catch {
    return "/";
  }
}

/** `preview_url` with a path from the original link. */
export function withPath(previewUrl: string, path: string): string {
  if (!path || path === "/") return previewUrl;
  try {
    return new URL(path, previewUrl).toString();
  } catch {
    return previewUrl;
  }
}
