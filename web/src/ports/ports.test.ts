import { describe, expect, it, vi } from "vitest";
import type { ForwardedPort, Project, ProjectEvent } from "../api/types";
import { linkPath, parsePortsEvent, portFromLink, replacePort, withPath } from "./ports";
import { openInNewTab, PortsStore, type PortsIO } from "./store";

const ID = "0b9c7c1e-1111-4222-8333-944445555666";
const port = (n: number, extra: Partial<ForwardedPort> = {}): ForwardedPort => ({
  port: n,
  address: "127.0.0.1",
  visibility: "private",
  preview_url: `http://${n}-${ID}.preview.localhost:8080/`,
  ...extra,
});
const portsEvent = (ports: unknown): ProjectEvent => ({ type: "other", event: "ports", data: JSON.stringify(ports) });
const statusEvent = (status: Project["status"]): ProjectEvent => ({
  type: "status",
  project: { id: ID, name: "p", description: null, status, created_at: "", updated_at: "", last_accessed_at: null, base_image: null, env_vars: null },
});

describe("portFromLink", () => {
  it("maps loopback links to their port", () => {
    expect(portFromLink("http://localhost:8000/")).toBe(8000);
    expect(portFromLink("http://127.0.0.1:3000/app?x=1")).toBe(3000);
    expect(portFromLink("https://0.0.0.0:8443")).toBe(8443);
    expect(portFromLink("http://[::1]:5173/")).toBe(5173);
    expect(portFromLink("localhost:4000")).toBe(4000);
    expect(portFromLink("http://LOCALHOST:9000")).toBe(9000);
  });

  it("uses the scheme's default port", () => {
    expect(portFromLink("http://localhost/")).toBe(80);
    expect(portFromLink("https://localhost/")).toBe(443);
  });

  it("leaves other links alone", () => {
    expect(portFromLink("https://example.com:8000/")).toBeNull();
    expect(portFromLink("http://192.168.1.2:8000/")).toBeNull();
    expect(portFromLink("ftp://localhost:21/")).toBeNull();
    expect(portFromLink("not a url")).toBeNull();
  });

  it("keeps the link's path for the preview", () => {
    expect(linkPath("http://localhost:8000/a/b?c=1#d")).toBe("/a/b?c=1#d");
    expect(withPath("http://8000-x.preview.localhost/", "/a?b=1")).toBe("http://8000-x.preview.localhost/a?b=1");
    expect(withPath("http://8000-x.preview.localhost/", "/")).toBe("http://8000-x.preview.localhost/");
  });
});

describe("ports events", () => {
  it("parses and sorts the list, dropping malformed entries", () => {
    expect(parsePortsEvent(JSON.stringify([port(9000), { port: "x" }, port(3000, { process: "node" })]))?.map((p) => p.port)).toEqual([3000, 9000]);
    expect(parsePortsEvent("{}")).toBeNull();
    expect(parsePortsEvent("nope")).toBeNull();
  });

  it("replaces one port in place or adds it", () => {
    const list = [port(3000), port(8000)];
    expect(replacePort(list, port(8000, { visibility: "public" })).map((p) => p.visibility)).toEqual(["private", "public"]);
    expect(replacePort(list, port(5000)).map((p) => p.port)).toEqual([3000, 5000, 8000]);
  });
});

function io(overrides: Partial<PortsIO> = {}): PortsIO {
  return {
    list: vi.fn(async () => [port(8000)]),
    setVisibility: vi.fn(async (n: number, visibility) => port(n, { visibility })),
    open: vi.fn(async (n: number) => ({ url: `http://${n}-${ID}.preview.localhost:8080/__aether/auth?token=t` })),
    ...overrides,
  };
}

describe("PortsStore", () => {
  it("lists while active, follows ports events and clears when the VM stops", async () => {
    const store = new PortsStore(io());
    const seen = vi.fn();
    store.subscribe(seen);
    store.onEvent(portsEvent([port(1)]));
    expect(store.snapshot.ports).toBeNull(); // not running yet
    store.setActive(true);
    await vi.waitFor(() => expect(store.snapshot.ports?.map((p) => p.port)).toEqual([8000]));
    store.onEvent(portsEvent([port(8000), port(3000, { process: "python3" })]));
    expect(store.snapshot.ports?.map((p) => p.port)).toEqual([3000, 8000]);
    store.onEvent(portsEvent([]));
    expect(store.snapshot.ports).toEqual([]);
    store.setActive(false);
    expect(store.snapshot.ports).toBeNull();
    expect(seen).toHaveBeenCalled();
  });

  it("an event beats a slower listing", async () => {
    let answer: (ports: ForwardedPort[]) => void = () => {};
    const store = new PortsStore(io({ list: () => new Promise((resolve) => (answer = resolve)) }));
    store.setActive(true);
    store.onEvent(portsEvent([port(4000)]));
    answer([port(8000)]);
    await Promise.resolve();
    expect(store.snapshot.ports?.map((p) => p.port)).toEqual([4000]);
  });

  it("lists again when the stream (re)connects with a running status", async () => {
    const list = vi.fn(async () => [port(8000)]);
    const store = new PortsStore(io({ list }));
    store.setActive(true);
    await vi.waitFor(() => expect(store.snapshot.ports).not.toBeNull());
    store.onEvent(statusEvent("running"));
    await vi.waitFor(() => expect(list).toHaveBeenCalledTimes(2));
    store.onEvent(statusEvent("stopping"));
    expect(list).toHaveBeenCalledTimes(2);
  });

  it("changes visibility and reports failures", async () => {
    const store = new PortsStore(io());
    store.setActive(true);
    await vi.waitFor(() => expect(store.snapshot.ports).not.toBeNull());
    await store.setVisibility(8000, "public");
    expect(store.snapshot.ports?.[0]?.visibility).toBe("public");
    expect(store.snapshot.busy.size).toBe(0);

    const failing = new PortsStore(io({ setVisibility: async () => Promise.reject(new Error("nope")) }));
    failing.setActive(true);
    await failing.setVisibility(8000, "public");
    expect(failing.snapshot.error).toBe("nope");
  });

  it("opens public ports at their URL and private ones through a one-time link", async () => {
    const ports = io();
    const store = new PortsStore(ports);
    store.setActive(true);
    store.onEvent(portsEvent([port(3000, { visibility: "public" }), port(8000)]));
    expect(await store.previewUrl(3000, "/docs")).toBe(`http://3000-${ID}.preview.localhost:8080/docs`);
    expect(ports.open).not.toHaveBeenCalled();
    expect(await store.previewUrl(8000)).toContain("token=t");
    expect(await store.previewUrl(9999)).toContain("9999-");
    expect(ports.open).toHaveBeenCalledTimes(2);
  });
});

describe("openInNewTab", () => {
  it("opens a tab at once and sends it on when the URL arrives", async () => {
    const tab = { opener: {} as unknown, location: { href: "about:blank" }, close: vi.fn() };
    const win = { open: vi.fn(() => tab as unknown as Window) };
    await openInNewTab(async () => "http://x/", win);
    expect(win.open).toHaveBeenCalledTimes(1);
    expect(tab.location.href).toBe("http://x/");
    expect(tab.opener).toBeNull();
  });

  it("closes the tab when the URL cannot be had", async () => {
    const tab = { opener: null, location: { href: "" }, close: vi.fn() };
    const win = { open: vi.fn(() => tab as unknown as Window) };
    await expect(openInNewTab(async () => Promise.reject(new Error("x")), win)).rejects.toThrow("x");
    expect(tab.close).toHaveBeenCalled();
  });
});
