import { describe, expect, it, vi } from "vitest";
import { MapStorage } from "./mapStorage.test-helper";
import { ApiClient, ApiError, NETWORK_ERROR_MESSAGE, toProjectEvent } from "./client";
import { SseParser } from "./sse";
import { TokenStore } from "./token";
import type { Project } from "./types";

const FUTURE = "2999-01-01T00:00:00Z";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function setup(respond: (url: string, init: RequestInit) => Response | Promise<Response>, signedIn = true) {
  const storage = new MapStorage();
  const tokens = new TokenStore(storage);
  if (signedIn) tokens.set({ token: "tok", expiresAt: FUTURE, user: { id: "u1", email: "a@b.c" } });
  const calls: { url: string; init: RequestInit }[] = [];
  const onUnauthenticated = vi.fn();
  const client = new ApiClient({
    tokens,
    onUnauthenticated,
    fetch: async (input, init) => {
      const url = String(input);
      calls.push({ url, init: init ?? {} });
      return respond(url, init ?? {});
    },
  });
  return { client, tokens, storage, calls, onUnauthenticated };
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error("expected the request to fail");
}

const project: Project = {
  id: "p1",
  name: "demo",
  description: null,
  status: "running",
  created_at: "2025-01-01T00:00:00Z",
  updated_at: "2025-01-01T00:00:00Z",
  last_accessed_at: null,
  base_image: null,
  env_vars: null,
};

describe("ApiClient", () => {
  it("sends the bearer token and JSON body", async () => {
    const t = setup(() => json(201, project));
    const created = await t.client.createProject({ name: "demo" });
    expect(created).toEqual(project);
    const call = t.calls[0];
    expect(call?.url).toBe("/api/projects");
    expect(call?.init.method).toBe("POST");
    const headers = call?.init.headers as Record<string, string>;
    expect(headers.Authorization).toBe("Bearer tok");
    expect(headers["Content-Type"]).toBe("application/json");
    expect(call?.init.body).toBe(JSON.stringify({ name: "demo" }));
  });

  it("parses the contract's error shape into ApiError", async () => {
    const t = setup(() =>
      json(503, { error: { code: "unavailable", message: "VM not running", status: "stopped" } }),
    );
    const error = await rejection(t.client.listTerminals("p1"));
    expect(error.status).toBe(503);
    expect(error.code).toBe("unavailable");
    expect(error.message).toBe("VM not running");
    expect(error.details).toEqual({ status: "stopped" });
    expect(t.onUnauthenticated).not.toHaveBeenCalled();
  });

  it("falls back to a code from the status when the body is not the error shape", async () => {
    const t = setup(() => new Response("<html>Bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    const error = await rejection(t.client.listProjects());
    expect(error.status).toBe(502);
    expect(error.code).toBe("internal");
    expect(error.message).toMatch(/HTTP 502/);

    const t2 = setup(() => new Response("", { status: 409 }));
    expect((await rejection(t2.client.listProjects())).code).toBe("conflict");
  });

  it("on 401 to a signed-in request clears the token and sends the user to sign-in", async () => {
    const t = setup(() => json(401, { error: { code: "unauthenticated", message: "token expired" } }));
    const error = await rejection(t.client.listProjects());
    expect(error.status).toBe(401);
    expect(t.tokens.token()).toBeNull();
    expect(t.storage.map.size).toBe(0);
    expect(t.onUnauthenticated).toHaveBeenCalledTimes(1);
  });

  it("a 401 from login is bad credentials, not a redirect", async () => {
    const t = setup(() => json(401, { error: { code: "unauthenticated", message: "wrong email or password" } }), false);
    const error = await rejection(t.client.login("a@b.c", "nope"));
    expect(error.code).toBe("unauthenticated");
    expect(t.onUnauthenticated).not.toHaveBeenCalled();
    const headers = t.calls[0]?.init.headers as Record<string, string>;
    expect(headers.Authorization).toBeUndefined();
  });

  it("stores the token on signup and login", async () => {
    const t = setup(
      () => json(201, { user: { id: "u9", email: "n@x.y" }, access_token: "new", expires_at: FUTURE }),
      false,
    );
    await t.client.signup("n@x.y", "long enough password");
    expect(t.tokens.token()).toBe("new");
    expect(t.tokens.get()?.user.email).toBe("n@x.y");
  });

  it("turns a network failure into ApiError(0, network_error)", async () => {
    const t = setup(() => {
      throw new TypeError("Failed to fetch");
    });
    const error = await rejection(t.client.listProjects());
    expect(error.status).toBe(0);
    expect(error.code).toBe("network_error");
    expect(error.message).toBe(NETWORK_ERROR_MESSAGE);
    expect(t.tokens.token()).toBe("tok");
  });

  it("lets an abort through as an abort", async () => {
    const t = setup(() => {
      throw new DOMException("aborted", "AbortError");
    });
    await expect(t.client.listProjects()).rejects.toMatchObject({ name: "AbortError" });
  });

  it("answers undefined for 204 and builds the start query", async () => {
    const t = setup((url) => (url.includes("/start") ? json(200, project) : new Response(null, { status: 204 })));
    expect(await t.client.deleteProject("p1")).toBeUndefined();
    await t.client.startProject("p1", { wait: true });
    expect(t.calls[1]?.url).toBe("/api/projects/p1/start?wait=true");
    await t.client.stopProject("p1");
    expect(t.calls[2]?.url).toBe("/api/projects/p1/stop");
  });

  it("treats an expired token as signed out", () => {
    const storage = new MapStorage();
    const tokens = new TokenStore(storage, () => Date.parse("2030-01-01T00:00:00Z"));
    tokens.set({ token: "old", expiresAt: "2029-12-31T00:00:00Z", user: { id: "u", email: "e@x.y" } });
    expect(tokens.token()).toBeNull();
  });

  it("reads project status events from an SSE stream sent in pieces", async () => {
    const body = `: hello\n\nevent: status\ndata: ${JSON.stringify({ ...project, status: "starting" })}\n\nevent: ports\ndata: []\n\nevent: status\r\ndata: ${JSON.stringify(project)}\r\n\r\n`;
    const chunks = [body.slice(0, 17), body.slice(17, 60), body.slice(60)];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
        controller.close();
      },
    });
    const t = setup(() => new Response(stream, { status: 200, headers: { "Content-Type": "text/event-stream" } }));
    const statuses: string[] = [];
    await t.client.projectEvents(
      "p1",
      (event) => {
        if (event.type === "status") statuses.push(event.project.status);
      },
      new AbortController().signal,
    );
    expect(statuses).toEqual(["starting", "running"]);
    const headers = t.calls[0]?.init.headers as Record<string, string>;
    expect(headers.Authorization).toBe("Bearer tok");
    expect(headers.Accept).toBe("text/event-stream");
  });
});

describe("SseParser", () => {
  it("joins data lines, skips comments and waits for the blank line", () => {
    const parser = new SseParser();
    expect(parser.push("event: status\ndata: a\n")).toEqual([]);
    expect(parser.push("data: b\n:keepalive\n\r")).toEqual([]);
    expect(parser.push("\ndata:c\n\n")).toEqual([
      { event: "status", data: "a\nb", id: undefined },
      { event: "message", data: "c", id: undefined },
    ]);
  });

  it("decodes wrapped and bare projects and ignores garbage", () => {
    expect(toProjectEvent("status", JSON.stringify(project))).toEqual({ type: "status", project });
    expect(toProjectEvent("status", JSON.stringify({ project }))).toEqual({ type: "status", project });
    expect(toProjectEvent("status", "{not json")).toBeNull();
    expect(toProjectEvent("ports", "[]")).toEqual({ type: "other", event: "ports", data: "[]" });
  });
});

describe("files", () => {
  it("encodes paths readably and passes raw names through as they are", async () => {
    const { client, calls } = setup(() => json(200, { type: "dir", path: "a b", entries: [] }));
    await client.listFolder("p1", "src/a b/c#d");
    await client.listFolder("p1", { encoded: "caf%E9/x", text: "caf\uFFFD/x" });
    expect(calls.map((c) => c.url)).toEqual([
      "/api/projects/p1/files?path=src/a%20b/c%23d",
      "/api/projects/p1/files?path=caf%E9/x",
    ]);
  });

  it("refuses a file where a folder was expected", async () => {
    const { client } = setup(() => new Response("hello", { status: 200, headers: { "Content-Type": "text/plain" } }));
    const error = await rejection(client.listFolder("p1", "notes.txt"));
    expect(error.code).toBe("invalid_response");
  });

  it("reads bytes and the unquoted ETag", async () => {
    const { client } = setup(() => new Response("hi", { status: 200, headers: { ETag: '"abc"', "Content-Length": "2" } }));
    const file = await client.readFile("p1", "a.txt");
    expect(file.etag).toBe("abc");
    expect(Array.from(file.bytes ?? [])).toEqual([104, 105]);
  });

  it("does not download a file larger than asked for", async () => {
    const { client } = setup(() => new Response("0123456789", { status: 200, headers: { ETag: '"e"', "Content-Length": "10" } }));
    const file = await client.readFile("p1", "big.bin", { maxBytes: 4 });
    expect(file).toMatchObject({ bytes: null, size: 10, etag: "e" });
  });

  it("writes with a quoted If-Match and reports 412 as precondition_failed", async () => {
    let status = 200;
    const { client, calls } = setup(() =>
      status === 200
        ? new Response(JSON.stringify({ path: "a", type: "file", size: 1, mtime: null, mode: 420, etag: "new" }), {
            status: 200,
            headers: { ETag: '"new"' },
          })
        : json(412, { error: { code: "precondition_failed", message: "the file changed since that version" } }),
    );
    const result = await client.writeFile("p1", "a", new TextEncoder().encode("x"), { ifMatch: "old" });
    expect(result).toMatchObject({ created: false, stat: { etag: "new" } });
    const headers = calls[0]?.init.headers as Record<string, string>;
    expect(headers["If-Match"]).toBe('"old"');
    expect(calls[0]?.init.method).toBe("PUT");

    status = 412;
    const error = await rejection(client.writeFile("p1", "a", new TextEncoder().encode("y"), { ifMatch: "old" }));
    expect(error).toMatchObject({ status: 412, code: "precondition_failed" });
  });

  it("deletes recursively only when asked", async () => {
    const { client, calls } = setup(() => new Response(null, { status: 204 }));
    await client.deletePath("p1", "dir");
    await client.deletePath("p1", "dir", { recursive: true });
    expect(calls.map((c) => c.url)).toEqual(["/api/projects/p1/files?path=dir", "/api/projects/p1/files?path=dir&recursive=true"]);
  });
});
