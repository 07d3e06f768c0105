// Browser test of the workspace, as a user would do it, against a running
// hub: land on the landing page signed out (its size and first paint are
// printed) and follow "Get started" to sign up, come back to it signed in
// and be sent on to the projects, create a project, open it, start its VM, type in the
// terminal, reload and find the output again, use a second tab; create a
// file in the tree, edit and save it, read it back with `cat`, change it
// from the terminal while editing and meet the conflict dialog, watch a
// clean tab reload by itself, open a binary file, rename and delete in the
// tree; serve a folder with python3 and open its preview from the ports
// panel; change a page a Vite dev server serves and see it update in the
// preview without a reload; create an agent key, see its private key, SSH config and known
// hosts, open the SSH guide from the agents dialog, revoke the key; clean up. It also reports the JavaScript each page loads (gzip).
//
//   AETHER_E2E_URL=http://127.0.0.1:8080 AETHER_E2E_DATA=.data npm run e2e
//
// AETHER_E2E_DATA is the hub's data folder (a local VM's home is under it).
//
// Uses Debian's Chromium through playwright-core (never `npx playwright
// install`); CHROMIUM overrides its path. No fixed sleeps: every wait polls
// with a deadline. Screenshots of each step land in e2e/screenshots/.
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { billingSteps } from "./billing.mjs";

/**
 * What the app exposes on `window.__aether` (src/terminal/registry.ts).
 * @typedef {{ text(): string, state(): { kind: string }, offset(): number | null, readyAt: number | null }} Probe
 * @typedef {{ text(): string, dirty(): boolean }} EditorProbe
 * @typedef {{ __aether?: { terminals: Record<string, Probe | undefined>, editors?: Record<string, EditorProbe | undefined> } }} ProbeWindow
 */

const base = process.env.AETHER_E2E_URL?.replace(/\/+$/, "");
if (!base) {
  console.error("AETHER_E2E_URL is not set: point it at a running hub, e.g. AETHER_E2E_URL=http://127.0.0.1:8080 npm run e2e");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const VM_START_MS = 120_000;
const READY_MS = 30_000;
const OUTPUT_MS = 15_000;

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, "screenshots");
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "aether-e2e-"));

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
/** @type {string[]} */
const browserErrors = [];
page.on("pageerror", (error) => browserErrors.push(`pageerror: ${error.message}`));
page.on("console", (message) => {
  if (message.type() === "error") browserErrors.push(`console: ${message.text()}`);
});

const user = {
  email: `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}@example.com`,
  password: `Pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}!`,
};
const projectName = `e2e-${Date.now().toString(36)}`;
/** @type {{ projectId: string, openedAt: number, startedVm: boolean, freePlan: { hours: string, projects: string } | null }} */
const run = { projectId: "", openedAt: 0, startedVm: false, freePlan: null };

let passed = 0;
let failed = 0;
let skipped = 0;
let stepNo = 0;

/**
 * Run one step; after a failure the rest are skipped (they build on it).
 * @param {string} name
 * @param {() => Promise<void>} body
 */
async function step(name, body) {
  stepNo++;
  const file = `${String(stepNo).padStart(2, "0")}-${name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}.png`;
  if (failed > 0) {
    skipped++;
    console.log(`- ${name}: skipped`);
    return;
  }
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`✓ ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed++;
    console.log(`✗ ${name}: ${error instanceof Error ? error.message : String(error)}`);
    console.log(`  at ${page.url()}`);
  }
  await settle();
  await page.screenshot({ path: join(shots, file) }).catch(() => {});
}

/** Wait for finite animations (a dialog fading in) to end, so a screenshot shows the end state. */
async function settle() {
  await page
    .waitForFunction(
      () => document.getAnimations().every((a) => a.playState !== "running" || a.effect?.getComputedTiming().endTime === Infinity),
      undefined,
      { timeout: 2_000, polling: 50 },
    )
    .catch(() => {});
}

/** @param {string} id */
const byTestId = (id) => page.getByTestId(id);

/**
 * Wait until the terminal `session` has had its first `ready`; answers Date.now() at that moment.
 * @param {string} session
 * @param {number} timeout
 */
async function terminalReady(session, timeout) {
  const handle = await page.waitForFunction(
    (name) => {
      const probe = /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name];
      return probe?.readyAt ?? false;
    },
    session,
    { timeout, polling: 50 },
  );
  return /** @type {number} */ (await handle.jsonValue());
}

/**
 * Wait until a line of terminal `session`'s buffer, trimmed, equals `line`.
 * @param {string} session
 * @param {string} line
 * @param {number} timeout
 */
async function terminalShowsLine(session, line, timeout) {
  try {
    await page.waitForFunction(
      ([name, wanted]) => {
        const probe = /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name];
        return probe ? probe.text().split("\n").some((l) => l.trim() === wanted) : false;
      },
      /** @type {[string, string]} */ ([session, line]),
      { timeout, polling: 100 },
    );
  } catch (error) {
    const text = await page
      .evaluate((name) => /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name]?.text() ?? "(no terminal)", session)
      .catch(() => "(unreadable)");
    throw new Error(`terminal "${session}" never showed a line "${line}"; it shows:\n${text.split("\n").slice(-15).join("\n")}`, { cause: error });
  }
}

/**
 * @param {string} session
 * @param {string} text
 */
async function typeInto(session, text) {
  await page.locator(`[data-testid="terminal-${session}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(text);
}

/**
 * Gzip sizes of the JavaScript each page needs before it can run, read from
 * the build (dist/.vite/manifest.json): the sign-in page (the entry and its
 * static imports), the workspace (plus its lazy chunk and that chunk's
 * static imports) and the editor (CodeMirror, loaded when a file opens).
 */
function bundleSizes() {
  const dist = join(here, "..", "dist");
  const manifestPath = join(dist, ".vite", "manifest.json");
  if (!existsSync(manifestPath)) throw new Error(`no ${manifestPath}: run npm run build first`);
  /** @type {Record<string, { file: string, isEntry?: boolean, imports?: string[], dynamicImports?: string[], src?: string }>} */
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  /** @param {string} key @param {Set<string>} into */
  const closure = (key, into = new Set()) => {
    const chunk = manifest[key];
    if (!chunk || into.has(chunk.file)) return into;
    into.add(chunk.file);
    for (const i of chunk.imports ?? []) closure(i, into);
    return into;
  };
  /** @param {Iterable<string>} files */
  const gz = (files) => [...files].reduce((n, f) => n + gzipSync(readFileSync(join(dist, f)), { level: 9 }).length, 0);
  const entry = Object.keys(manifest).find((k) => manifest[k]?.isEntry);
  const workspaceKey = Object.keys(manifest).find((k) => k.endsWith("workspace/WorkspacePage.tsx"));
  const editorKey = Object.keys(manifest).find((k) => k.endsWith("editor/codemirror/CodeEditor.tsx"));
  if (!entry || !workspaceKey || !editorKey) throw new Error("the manifest lacks the entry, the workspace or the editor chunk");
  const signIn = closure(entry);
  const workspace = closure(workspaceKey, new Set(signIn));
  const editor = closure(editorKey, new Set(workspace));
  const only = (/** @type {Set<string>} */ all, /** @type {Set<string>} */ before) => [...all].filter((f) => !before.has(f));
  const kb = (/** @type {number} */ n) => `${(n / 1024).toFixed(1)} KB`;
  const sizes = {
    signIn: gz(signIn),
    workspace: gz(workspace),
    workspaceChunk: gz(only(workspace, signIn)),
    editor: gz(only(editor, workspace)),
    editorFiles: only(editor, workspace),
  };
  const leaks = [...workspace].filter((f) => /codemirror|cm-lang|lezer/i.test(f));
  console.log(`  initial JS (gzip): sign-in ${kb(sizes.signIn)}; workspace ${kb(sizes.workspace)} (its chunk ${kb(sizes.workspaceChunk)});`);
  console.log(`  editor on first open: +${kb(sizes.editor)} in ${sizes.editorFiles.map((f) => f.replace("assets/", "")).join(", ")}`);
  if (sizes.signIn >= 150 * 1024) throw new Error(`the sign-in page loads ${kb(sizes.signIn)} of JS (gzip); the budget is 150 KB`);
  if (leaks.length > 0) throw new Error(`CodeMirror is loaded before a file is opened: ${leaks.join(", ")}`);
  if (!sizes.editorFiles.some((f) => /codemirror/.test(f))) throw new Error("CodeMirror has no chunk of its own");
}

/**
 * The page's paint timings (ms from navigation start), as the browser
 * reports them: `first-paint` and `first-contentful-paint`.
 * @returns {Promise<Record<string, number>>}
 */
async function firstPaints() {
  return page.evaluate(
    () =>
      new Promise((resolve) => {
        /** @type {Record<string, number>} */
        const seen = {};
        for (const e of performance.getEntriesByType("paint")) seen[e.name] = e.startTime;
        if (seen["first-contentful-paint"] !== undefined) return resolve(seen);
        const observer = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) seen[e.name] = e.startTime;
          if (seen["first-contentful-paint"] !== undefined) {
            observer.disconnect();
            resolve(seen);
          }
        });
        observer.observe({ type: "paint", buffered: true });
        setTimeout(() => resolve(seen), 5_000);
      }),
  );
}

/**
 * Wait until the editor of `path` holds exactly `expected`.
 * @param {string} path
 * @param {string} expected
 * @param {number} timeout
 */
async function editorHolds(path, expected, timeout = OUTPUT_MS) {
  try {
    await page.waitForFunction(
      ([p, want]) => /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.editors?.[p]?.text() === want,
      /** @type {[string, string]} */ ([path, expected]),
      { timeout, polling: 100 },
    );
  } catch (error) {
    const text = await page
      .evaluate((p) => /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.editors?.[p]?.text() ?? "(no editor)", path)
      .catch(() => "(unreadable)");
    throw new Error(`the editor of ${path} never held ${JSON.stringify(expected)}; it holds ${JSON.stringify(text)}`, { cause: error });
  }
}

/** @param {string} path */
const treeItem = (path) => page.locator(`[data-testid="tree-item"][data-path="${path}"]`);
/** @param {string} path */
const editorTab = (path) => page.locator(`[data-testid="editor-tab"][data-path="${path}"]`);
/** @param {string} path */
const editorContent = (path) => page.locator(`[data-testid="editor-host"][data-path="${path}"] .cm-content`);
/** A random port for the preview's server, away from common ones. */
const previewPort = 20000 + Math.floor(Math.random() * 20000);
const portRow = () => page.locator(`[data-testid="port-row"][data-port="${previewPort}"]`);
/** A port for a Vite dev server (this repository's Vite) in the VM. */
const hmrPort = previewPort + 1;
const hmrRow = () => page.locator(`[data-testid="port-row"][data-port="${hmrPort}"]`);
const agentName = `e2e-${Math.random().toString(36).slice(2, 8)}`;
const agentRow = () => page.locator(`[data-testid="agent-row"][data-agent-name="${agentName}"]`);
const saveKey = process.platform === "darwin" ? "Meta+S" : "Control+S";

/**
 * Run a shell command in the main terminal and wait for a line it prints.
 * @param {string} command
 * @param {string} line
 */
async function shell(command, line) {
  await typeInto("main", command);
  await page.keyboard.press("Enter");
  await terminalShowsLine("main", line, OUTPUT_MS);
}

try {
  await step("Bundle sizes", async () => {
    bundleSizes();
  });

  await step("Land on the landing page signed out", async () => {
    const response = await page.goto(`${base}/`);
    if (response?.status() !== 200) throw new Error(`/ answered ${response?.status()}`);
    const html = await response.body();
    const paints = await firstPaints();
    const fetched = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name));
    const fp = paints["first-paint"];
    const fcp = paints["first-contentful-paint"];
    console.log(
      `  landing page: ${html.length} bytes (${gzipSync(html, { level: 9 }).length} gzip), ` +
        `first paint ${fp?.toFixed(0) ?? "?"} ms, first contentful paint ${fcp?.toFixed(0) ?? "?"} ms (from navigation start)`,
    );
    if (fcp === undefined) throw new Error("the landing page never painted its content");
    if (fetched.length > 0) throw new Error(`the landing page fetched more than itself: ${fetched.join(", ")}`);
    await page.getByRole("heading", { level: 1 }).waitFor();
    await page.locator('a[href="/docs"]').first().waitFor();
    // The free plan as the landing page states it: the projects page must say the same after sign-up.
    const free = (await page.locator("#plan-free").textContent()) ?? "";
    const hours = /([\d,]+) compute hours/.exec(free)?.[1];
    const projects = /([\d,]+) projects/.exec(free)?.[1];
    if (!hours || !projects) throw new Error(`the free plan's card says: ${free}`);
    run.freePlan = { hours, projects };
  });

  await step("Get started leads to sign-up", async () => {
    await page.getByRole("link", { name: "Get started" }).first().click();
    await page.waitForURL("**/signup");
    await byTestId("signup-email").waitFor({ timeout: 15_000 });
  });

  await step("Sign up", async () => {
    if (new URL(page.url()).pathname !== "/signup") await page.goto(`${base}/signup`);
    await byTestId("signup-email").fill(user.email);
    await byTestId("signup-password").fill(user.password);
    await byTestId("signup-password").press("Enter");
    await byTestId("new-project").waitFor({ timeout: 15_000 });
    if (new URL(page.url()).pathname !== "/projects") throw new Error(`expected the projects page, at ${page.url()}`);
    const free = run.freePlan;
    if (!free) throw new Error("the landing page's free plan was not read");
    await byTestId("usage")
      .getByText(`Free plan · 0 of ${free.hours} compute hours this month · 0 of ${free.projects} projects`)
      .waitFor({ timeout: 10_000 });
  });

  await step("Signed in, the landing page sends you to your projects", async () => {
    await page.goto(`${base}/`);
    await page.waitForURL("**/projects", { timeout: 10_000 });
    await byTestId("new-project").waitFor({ timeout: 15_000 });
  });

  await step("Create a project", async () => {
    await byTestId("new-project").click();
    await byTestId("project-name-input").fill(projectName);
    await byTestId("create-project-submit").click();
    const row = page.locator(`[data-testid="project-row"][data-project-name="${projectName}"]`);
    await row.waitFor({ timeout: 15_000 });
    run.projectId = (await row.getAttribute("data-project-id")) ?? "";
    if (!run.projectId) throw new Error("the new row has no project id");
    await byTestId("create-project-dialog").waitFor({ state: "hidden" });
  });

  await step("Open the project", async () => {
    run.openedAt = Date.now();
    await page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`).getByTestId("open-project").click();
    await page.waitForURL(`**/p/${run.projectId}`);
    await byTestId("vm-status").waitFor({ timeout: 15_000 });
    const title = await byTestId("project-title").textContent();
    if (title !== projectName) throw new Error(`header shows "${title}", expected "${projectName}"`);
  });

  await step("Start the VM if needed", async () => {
    const status = await byTestId("vm-status").getAttribute("data-status");
    if (status !== "running") {
      run.startedVm = true;
      if (status !== "starting") await byTestId("start-vm").click();
      await page.locator('[data-testid="vm-status"][data-status="running"]').waitFor({ timeout: VM_START_MS });
    }
  });

  await step("Terminal attaches", async () => {
    const readyAt = await terminalReady("main", READY_MS);
    const note = run.startedVm ? " (includes starting the VM)" : "";
    console.log(`  workspace navigation → terminal ready: ${readyAt - run.openedAt} ms${note}`);
    await page.locator('[data-testid="terminal-connection"][data-state="connected"]').waitFor({ timeout: 5_000 });
  });

  await step("Type echo hello", async () => {
    await typeInto("main", "echo hello");
    await page.keyboard.press("Enter");
    await terminalShowsLine("main", "hello", OUTPUT_MS);
  });

  await step("Reload shows the earlier output again", async () => {
    const navigatedAt = Date.now();
    await page.reload();
    const readyAt = await terminalReady("main", READY_MS);
    console.log(`  reload → terminal ready: ${readyAt - navigatedAt} ms`);
    await terminalShowsLine("main", "hello", OUTPUT_MS);
  });

  await step("A second terminal tab", async () => {
    await byTestId("terminal-tab-new").click();
    await page.locator('[data-testid="terminal-tab"][data-session="2"][aria-selected="true"]').waitFor();
    await terminalReady("2", READY_MS);
    await typeInto("2", "echo second");
    await page.keyboard.press("Enter");
    await terminalShowsLine("2", "second", OUTPUT_MS);
    await page.locator('[data-testid="terminal-tab-close"][data-session="2"]').click();
    await page.locator('[data-testid="terminal-tab"][data-session="2"]').waitFor({ state: "detached" });
    await page.locator('[data-testid="terminal-tab"][data-session="main"][aria-selected="true"]').waitFor();
  });


  await step("Create a file in the tree", async () => {
    await page.locator('[data-testid="file-tree"], [data-testid="tree-new-file"]').first().waitFor({ timeout: 15_000 });
    await byTestId("tree-new-file").click();
    await byTestId("tree-name-input").fill("hello.txt");
    await byTestId("tree-name-input").press("Enter");
    await treeItem("hello.txt").waitFor({ timeout: 10_000 });
    await editorTab("hello.txt").waitFor({ timeout: 10_000 });
    await editorContent("hello.txt").waitFor({ timeout: 15_000 });
  });

  await step("Type in the editor and save with Ctrl-S", async () => {
    await editorContent("hello.txt").click();
    await page.keyboard.type("Hello from aether");
    await page.locator('[data-testid="editor-tab"][data-path="hello.txt"][data-dirty="true"]').waitFor({ timeout: 5_000 });
    await page.keyboard.press(saveKey);
    await page.locator('[data-testid="editor-tab"][data-path="hello.txt"][data-dirty="false"]').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="save-state"]', { hasText: "Saved" }).waitFor({ timeout: 5_000 });
  });

  await step("cat in the terminal shows what was saved", async () => {
    await shell("cat hello.txt; echo", "Hello from aether");
  });

  await step("A change on disk while editing shows a banner", async () => {
    await editorContent("hello.txt").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type(" and more");
    await page.locator('[data-testid="editor-tab"][data-path="hello.txt"][data-dirty="true"]').waitFor({ timeout: 5_000 });
    await shell("echo changed > hello.txt && echo done-1", "done-1");
    await byTestId("banner-changed").waitFor({ timeout: 10_000 });
    await editorHolds("hello.txt", "Hello from aether and more");
  });

  await step("Saving then shows the conflict dialog", async () => {
    await editorContent("hello.txt").click();
    await page.keyboard.press(saveKey);
    await byTestId("conflict-dialog").waitFor({ timeout: 10_000 });
    await byTestId("conflict-overwrite").waitFor();
    await byTestId("conflict-load-theirs").waitFor();
    await byTestId("conflict-keep").waitFor();
  });

  await step("Overwrite theirs saves mine", async () => {
    await byTestId("conflict-overwrite").click();
    await byTestId("conflict-dialog").waitFor({ state: "hidden", timeout: 10_000 });
    await page.locator('[data-testid="editor-tab"][data-path="hello.txt"][data-dirty="false"]').waitFor({ timeout: 10_000 });
    await shell("cat hello.txt; echo", "Hello from aether and more");
  });

  await step("A clean tab reloads by itself", async () => {
    await shell("echo from the terminal > hello.txt && echo done-2", "done-2");
    await editorHolds("hello.txt", "from the terminal\n");
    if ((await byTestId("banner-changed").count()) > 0) throw new Error("a clean tab showed the changed-on-disk banner");
  });

  await step("A binary file opens as an info panel", async () => {
    await shell("head -c 3000 /dev/urandom > noise.bin && echo done-3", "done-3");
    await treeItem("noise.bin").click({ timeout: 10_000 });
    await byTestId("editor-binary").waitFor({ timeout: 10_000 });
    await byTestId("editor-download").waitFor();
  });

  await step("Folders open in the tree and code is coloured", async () => {
    await shell(
      "mkdir -p src && printf 'export function greet(name: string): string {\\n  // say hello\\n  return `Hello, ${name}!`;\\n}\\n\\nconst answer = 42;\\n' > src/main.ts && echo done-4",
      "done-4",
    );
    await treeItem("src").click({ timeout: 10_000 });
    await page.locator('[data-testid="tree-item"][data-path="src"][aria-expanded="true"]').waitFor();
    await treeItem("src/main.ts").click({ timeout: 10_000 });
    await editorHolds("src/main.ts", "export function greet(name: string): string {\n  // say hello\n  return `Hello, ${name}!`;\n}\n\nconst answer = 42;\n");
    // The TypeScript mode loads as its own chunk and colours the keywords.
    await page.locator('[data-testid="editor-host"][data-path="src/main.ts"] .cm-line span').first().waitFor({ timeout: 10_000 });
  });

  await step("The terminal beside the editor", async () => {
    await byTestId("toggle-terminal-placement").click();
    await page.locator('[data-testid="splitter-terminal"][aria-orientation="vertical"]').waitFor();
    await typeInto("main", "echo beside");
    await page.keyboard.press("Enter");
    await terminalShowsLine("main", "beside", OUTPUT_MS);
    await settle();
    await page.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-terminal-beside-the-editor.png`) });
    await byTestId("toggle-terminal-placement").click();
    await page.locator('[data-testid="splitter-terminal"][aria-orientation="horizontal"]').waitFor();
  });

  await step("New folder from the context menu", async () => {
    await treeItem("src").click({ button: "right" });
    await byTestId("context-menu").waitFor();
    await settle();
    await page.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-context-menu.png`) });
    await byTestId("menu-new-folder").click();
    await byTestId("tree-name-input").fill("lib");
    await byTestId("tree-name-input").press("Enter");
    await treeItem("src/lib").waitFor({ timeout: 10_000 });
    await shell("[ -d src/lib ] && echo lib-made", "lib-made");
  });

  await step("Rename with F2 and delete with Delete", async () => {
    await treeItem("hello.txt").click();
    await page.keyboard.press("F2");
    await byTestId("tree-rename-input").fill("renamed.txt");
    await byTestId("tree-rename-input").press("Enter");
    await treeItem("renamed.txt").waitFor({ timeout: 10_000 });
    await treeItem("hello.txt").waitFor({ state: "detached", timeout: 10_000 });
    await editorTab("renamed.txt").waitFor({ timeout: 10_000 });
    await treeItem("renamed.txt").focus();
    await page.keyboard.press("Delete");
    await byTestId("delete-file-dialog").waitFor();
    await settle();
    await page.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-delete-confirmation.png`) });
    await byTestId("confirm-delete-file").click();
    await treeItem("renamed.txt").waitFor({ state: "detached", timeout: 10_000 });
    await editorTab("renamed.txt").waitFor({ state: "detached", timeout: 10_000 });
    await shell("[ -e renamed.txt ] || [ -e hello.txt ] || echo both-gone", "both-gone");
  });

  await step("A server appears in the ports panel", async () => {
    await byTestId("ports-panel").waitFor({ timeout: 10_000 });
    await typeInto("main", `python3 -m http.server ${previewPort} --bind 127.0.0.1`);
    await page.keyboard.press("Enter");
    await portRow().waitFor({ timeout: 30_000 });
    const text = await portRow().textContent();
    if (!text?.includes("127.0.0.1")) throw new Error(`the port's row does not show its address: ${text}`);
  });

  await step("Open its preview", async () => {
    const popupAppears = context.waitForEvent("page", { timeout: 15_000 });
    await portRow().getByTestId("port-open").click();
    const popup = await popupAppears;
    try {
      await popup.getByText("Directory listing for /").first().waitFor({ timeout: 20_000 });
      if (!/\.preview\.localhost/.test(popup.url())) throw new Error(`the preview opened at ${popup.url()}`);
      await popup.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-preview.png`) });
    } finally {
      await popup.close().catch(() => {});
    }
  });

  await step("Make the port public and private again", async () => {
    await portRow().getByTestId("port-visibility").click();
    await page.locator(`[data-testid="port-row"][data-port="${previewPort}"][data-visibility="public"]`).waitFor({ timeout: 10_000 });
    await settle();
    await page.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-public-port.png`) });
    await portRow().getByTestId("port-visibility").click();
    await page.locator(`[data-testid="port-row"][data-port="${previewPort}"][data-visibility="private"]`).waitFor({ timeout: 10_000 });
  });

  await step("Stop the server with Ctrl-C", async () => {
    await page.locator('[data-testid="terminal-main"] .xterm-helper-textarea').focus();
    await page.keyboard.press("Control+C");
    await portRow().waitFor({ state: "detached", timeout: 30_000 });
    await shell("echo server-stopped", "server-stopped");
  });

  await step("A Vite dev server's hot reload works through its preview", async () => {
    // A page whose module accepts its own updates, and a mark of when the
    // page loaded: an update must change the text without a reload.
    await shell(
      `mkdir -p hmr && cd hmr && printf '<p id="m"></p><script type="module" src="/main.js"></script><script>window.loadedAt = Date.now()</script>' > index.html && printf 'import.meta.hot.accept(); document.getElementById("m").textContent = "hot-one";' > main.js && echo files-ready`,
      "files-ready",
    );
    // This repository's Vite and the Node it needs (the VM image's is
    // older), put in the local VM's home from this machine's side.
    const data = process.env.AETHER_E2E_DATA;
    if (!data) throw new Error("AETHER_E2E_DATA (the hub's data folder) is not set: the Vite step needs a local VM's home");
    const home = join(data, "vms", run.projectId, "home");
    const kit = join(home, ".e2e-vite");
    cpSync(join(here, "..", "node_modules"), join(kit, "node_modules"), { recursive: true });
    copyFileSync(process.execPath, join(kit, "node"));
    const { uid, gid } = statSync(home);
    execFileSync("chown", ["-R", `${uid}:${gid}`, kit]);
    await shell(
      `~/.e2e-vite/node ~/.e2e-vite/node_modules/vite/bin/vite.js --port ${hmrPort} --strictPort --host 127.0.0.1 < /dev/null > ../vite.log 2>&1 & echo vite-started`,
      "vite-started",
    );
    await hmrRow().waitFor({ timeout: 30_000 });
    // Vite's client logs this once its WebSocket (through the preview) is
    // open; listened for on the whole context, before the page exists.
    const connected = context.waitForEvent("console", { predicate: (m) => m.text().includes("[vite] connected"), timeout: 30_000 });
    connected.catch(() => {}); // awaited below; a failure before that is the step's
    const popupAppears = context.waitForEvent("page", { timeout: 15_000 });
    await hmrRow().getByTestId("port-open").click();
    const popup = await popupAppears;
    try {
      await popup.getByText("hot-one").waitFor({ timeout: 30_000 });
      await connected;
      const loadedAt = await popup.evaluate(() => /** @type {{ loadedAt?: number }} */ (/** @type {unknown} */ (window)).loadedAt);
      await shell("sed -i s/hot-one/hot-two/ main.js && echo edited", "edited");
      await popup.getByText("hot-two").waitFor({ timeout: 15_000 });
      const after = await popup.evaluate(() => /** @type {{ loadedAt?: number }} */ (/** @type {unknown} */ (window)).loadedAt);
      if (after !== loadedAt) throw new Error("the page reloaded instead of taking the update");
      await popup.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-hot-reload.png`) });
    } finally {
      await popup.close().catch(() => {});
    }
    await shell("kill %1; cd .. && echo vite-stopped", "vite-stopped");
    await hmrRow().waitFor({ state: "detached", timeout: 30_000 });
  });

  await step("Create an agent key", async () => {
    await byTestId("open-agents").click();
    await byTestId("agents-dialog").waitFor();
    await byTestId("agent-name").fill(agentName);
    await byTestId("agent-create").click();
    await byTestId("agent-created").waitFor({ timeout: 15_000 });
    const key = await byTestId("agent-private-key").inputValue();
    if (!key.includes("BEGIN OPENSSH PRIVATE KEY")) throw new Error(`the private key is not shown: ${key.slice(0, 60)}`);
    const config = (await byTestId("agent-ssh-config").textContent()) ?? "";
    if (!/Host \S+/.test(config) || !config.includes("ProxyJump")) throw new Error(`the SSH config is not shown: ${config.slice(0, 120)}`);
    await byTestId("agent-copy-key").waitFor();
    await byTestId("agent-download-key").waitFor();
    await agentRow().waitFor();
  });

  await step("Open the SSH guide from the agents dialog", async () => {
    const hosts = (await byTestId("agent-known-hosts").textContent()) ?? "";
    if (!/ssh-ed25519 \S+/.test(hosts)) throw new Error(`the known hosts are not shown: ${hosts.slice(0, 120)}`);
    const popupAppears = context.waitForEvent("page", { timeout: 15_000 });
    await byTestId("agents-guide").click();
    const guide = await popupAppears;
    try {
      await guide.getByRole("heading", { level: 1, name: "Connecting any SSH client or IDE" }).waitFor({ timeout: 15_000 });
      if (new URL(guide.url()).pathname !== "/docs/ssh") throw new Error(`the guide opened at ${guide.url()}`);
      await guide.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-ssh-guide.png`) });
    } finally {
      await guide.close().catch(() => {});
    }
    // The key shown once is still there to copy.
    await byTestId("agent-created").waitFor();
  });

  await step("Revoke the agent key", async () => {
    await byTestId("agent-created-done").click();
    await byTestId("agent-created").waitFor({ state: "detached" });
    await agentRow().getByTestId("agent-revoke").click();
    await settle();
    await page.screenshot({ path: join(shots, `${String(stepNo).padStart(2, "0")}b-revoke-confirmation.png`) });
    await agentRow().getByTestId("agent-revoke-confirm").click();
    await agentRow().waitFor({ state: "detached", timeout: 10_000 });
    await byTestId("agents-close").click();
    await byTestId("agents-dialog").waitFor({ state: "hidden" });
  });

  await billingSteps({ step, page, base, run });

  await step("Stop the VM", async () => {
    await byTestId("stop-vm").click();
    await byTestId("vm-stopped").waitFor({ timeout: VM_START_MS });
    await byTestId("tree-stopped").waitFor({ timeout: 10_000 });
  });

  await (await import("./workspace.mjs")).workspaceSteps({ step, page, context, base, run, typeInto, terminalReady, terminalShowsLine, shots, VM_START_MS, READY_MS, OUTPUT_MS });

  await step("Delete the project", async () => {
    await byTestId("back-to-projects").click();
    const row = page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`);
    await row.getByTestId("project-delete").click();
    await byTestId("confirm-delete").click();
    await row.waitFor({ state: "detached", timeout: 30_000 });
  });

  await step("Sign out", async () => {
    await byTestId("sign-out").click();
    await byTestId("signin-email").waitFor();
  });

  await (await import("./accounts.mjs")).accountSteps({ step, page, base, shots, executablePath, VM_START_MS });
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

if (failed > 0 && browserErrors.length > 0) {
  console.log("browser errors:");
  for (const line of browserErrors.slice(-20)) console.log(`  ${line}`);
}
console.log(`screenshots in ${shots}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
