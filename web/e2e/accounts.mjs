// Browser steps for accounts, run by run.mjs once its user has signed out:
// a new account signs up and gets its verification mail over SMTP (the
// sink in smtp-sink.mjs, whose folder is AETHER_E2E_MAIL), follows the
// link and sees the address verified; resets a forgotten password from
// the mail; changes the password in one browser and finds a second browser
// signed out; signs out a session from the list, then every other one;
// reads all of it in the audit log; and deletes the account, after which
// its VM's processes and its home (under AETHER_E2E_DATA/vms/<project>/)
// are gone and signing in fails. No fixed sleeps: every wait polls with a
// deadline.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {import("playwright-core").BrowserContext} BrowserContext
 * @typedef {{
 *   step: (name: string, body: () => Promise<void>) => Promise<void>,
 *   page: Page,
 *   base: string,
 *   shots: string,
 *   executablePath: string,
 *   VM_START_MS: number,
 * }} Kit
 */

const MAIL_MS = 30_000;

/** @param {Kit} kit */
export async function accountSteps(kit) {
  const { step, page, base, shots, executablePath, VM_START_MS } = kit;
  const mailDir = process.env.AETHER_E2E_MAIL;
  const data = process.env.AETHER_E2E_DATA;
  const byTestId = (/** @type {string} */ id) => page.getByTestId(id);
  const shot = (/** @type {string} */ name, target = page) => target.screenshot({ path: join(shots, `accounts-${name}.png`) });
  const tag = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  let email = `acct-${tag}@example.com`;
  const newEmail = `acct-${tag}-new@example.com`;
  const passwords = [`First-${tag}!`, `Second-${tag}?`, `Third-${tag}#`];
  const projectName = `acct-${tag}`;
  /** Mail files already read. */
  const seen = new Set();
  /** @type {{ browser: import("playwright-core").Browser | null, page: Page | null, verifyLink: string, projectId: string, vmPid: number }} */
  const state = { browser: null, page: null, verifyLink: "", projectId: "", vmPid: 0 };

  /**
   * The link to `{base}/{path}?token=…` in the next unread mail to `to`, waiting for it.
   * @param {string} to
   * @param {string} path
   */
  async function mailedLink(to, path) {
    if (!mailDir) throw new Error("AETHER_E2E_MAIL (the SMTP sink's folder) is not set: scripts/test.sh starts the sink");
    const deadline = Date.now() + MAIL_MS;
    for (;;) {
      const names = existsSync(mailDir) ? readdirSync(mailDir).filter((n) => n.endsWith(".eml") && !seen.has(n)).sort() : [];
      for (const name of names) {
        const text = readFileSync(join(mailDir, name), "latin1");
        if (!text.split("\r\n").some((l) => l.toLowerCase() === `x-envelope-to: ${to.toLowerCase()}`)) continue;
        seen.add(name);
        // Undo quoted-printable, should the message use it.
        const plain = text.replace(/=\r?\n/g, "").replace(/=3D/gi, "=");
        const link = new RegExp(`(https?://[^\\s/]+/${path}\\?token=[A-Za-z0-9_-]+)`).exec(plain)?.[1];
        if (link) return link;
      }
      if (Date.now() > deadline) throw new Error(`no mail to ${to} with a /${path} link within ${MAIL_MS / 1000} s (folder ${mailDir})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** @param {Page} p @param {string} password */
  async function signIn(p, password) {
    await p.goto(`${base}/signin`);
    await p.getByTestId("signin-email").fill(email);
    await p.getByTestId("signin-password").fill(password);
    await p.getByTestId("signin-password").press("Enter");
  }

  /** The second browser's page, signed in with `password`. */
  async function otherSignedIn(/** @type {string} */ password) {
    if (!state.page) {
      state.browser = await chromium.launch({
        executablePath,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
      });
      state.page = await (await state.browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    }
    const other = state.page;
    await signIn(other, password);
    await other.getByTestId("new-project").waitFor({ timeout: 15_000 });
    return other;
  }

  /** The other browser, reloaded, ends up on the sign-in form. */
  async function otherSignedOut() {
    const other = state.page;
    if (!other) throw new Error("no second browser");
    await other.reload();
    await other.waitForURL("**/signin**", { timeout: 15_000 });
    await other.getByTestId("signin-email").waitFor();
  }

  const sessionRows = () => page.locator('[data-testid="session-row"]');
  /** @param {number} n */
  async function sessionCount(n) {
    await page.waitForFunction((want) => document.querySelectorAll('[data-testid="session-row"]').length === want, n, { timeout: 10_000, polling: 100 });
  }
  async function openSettings() {
    await page.goto(`${base}/settings`);
    await byTestId("settings-page").waitFor({ timeout: 15_000 });
    await byTestId("session-list").waitFor({ timeout: 10_000 });
  }

  try {
    await step("Accounts: sign up and receive the verification mail", async () => {
      await page.goto(`${base}/signup`);
      await byTestId("signup-email").fill(email);
      await byTestId("signup-password").fill(passwords[0]);
      await byTestId("signup-password").press("Enter");
      await byTestId("new-project").waitFor({ timeout: 15_000 });
      state.verifyLink = await mailedLink(email, "verify-email");
    });

    await step("Accounts: settings, from the top bar, show the address unverified", async () => {
      await byTestId("settings-link").click();
      await page.waitForURL("**/settings");
      await byTestId("settings-email").getByText(email).waitFor({ timeout: 15_000 });
      await page.locator('[data-testid="email-status"][data-verified="false"]').waitFor();
      await byTestId("resend-verification").waitFor();
      await shot("unverified");
    });

    await step("Accounts: the mailed link verifies the address", async () => {
      await page.goto(state.verifyLink);
      await page.locator('[data-testid="verify-result"][data-state="ok"]').waitFor({ timeout: 15_000 });
      const text = (await byTestId("verify-result").textContent()) ?? "";
      if (!text.includes(email)) throw new Error(`the verification page says: ${text}`);
      await shot("verified");
      await byTestId("verify-continue").click();
      await page.waitForURL("**/settings");
      await page.locator('[data-testid="email-status"][data-verified="true"]').waitFor({ timeout: 10_000 });
      if ((await byTestId("resend-verification").count()) > 0) throw new Error("a verified address still offers to resend the link");
    });

    await step("Accounts: set a display name", async () => {
      await byTestId("settings-display-name").fill("Ada Example");
      await byTestId("settings-display-name-save").click();
      await page.locator('[data-testid="profile-message"][data-state="done"]').waitFor({ timeout: 10_000 });
      await page.reload();
      await byTestId("settings-display-name").waitFor({ timeout: 15_000 });
      const kept = await byTestId("settings-display-name").inputValue();
      if (kept !== "Ada Example") throw new Error(`after a reload the name is "${kept}"`);
    });

    await step("Accounts: reset a forgotten password from the mail", async () => {
      await byTestId("sign-out").click();
      await byTestId("signin-email").waitFor();
      await byTestId("signin-email").fill(email);
      await byTestId("forgot-password").click();
      await page.waitForURL("**/forgot-password**");
      if ((await byTestId("forgot-email").inputValue()) !== email) throw new Error("the address typed on the sign-in form was not carried over");
      await byTestId("forgot-submit").click();
      await byTestId("forgot-sent").waitFor({ timeout: 10_000 });
      const link = await mailedLink(email, "reset-password");
      await page.goto(link);
      await byTestId("reset-password").waitFor({ timeout: 15_000 });
      if (new URL(page.url()).search.includes("token")) throw new Error("the reset link's token stays in the address bar");
      await byTestId("reset-password").fill(passwords[1]);
      await byTestId("reset-password-confirm").fill(passwords[1]);
      await shot("reset-password");
      await byTestId("reset-submit").click();
      await byTestId("new-project").waitFor({ timeout: 15_000 });
      const shown = await byTestId("user-email").textContent();
      if (shown !== email) throw new Error(`signed in as "${shown}" after the reset`);
      // The link works once.
      await page.goto(link);
      await byTestId("reset-password").fill(`Another-${tag}`);
      await byTestId("reset-password-confirm").fill(`Another-${tag}`);
      await byTestId("reset-submit").click();
      const error = (await byTestId("reset-error").textContent({ timeout: 10_000 })) ?? "";
      if (!/already used|expired/i.test(error)) throw new Error(`a second use of the link says: ${error}`);
    });

    await step("Accounts: changing the password signs the other browser out", async () => {
      const other = await otherSignedIn(passwords[1]);
      await openSettings();
      await sessionCount(2);
      await page.locator('[data-testid="session-row"][data-current="true"]').getByTestId("this-device").waitFor();
      await byTestId("current-password").fill(passwords[1]);
      await byTestId("new-password").fill(passwords[2]);
      await byTestId("confirm-password").fill(passwords[2]);
      await byTestId("change-password-submit").click();
      await page.locator('[data-testid="password-message"][data-state="done"]').waitFor({ timeout: 10_000 });
      await sessionCount(1);
      await shot("password-changed");
      await otherSignedOut();
      await shot("other-browser-signed-out", other);
      // The old password is refused; the new one works.
      await signIn(other, passwords[1]);
      const refused = (await other.locator('[data-testid="signin-form"] [role="alert"]').textContent({ timeout: 10_000 })) ?? "";
      if (!refused.includes("Incorrect email or password")) throw new Error(`the old password got: ${refused}`);
    });

    await step("Accounts: a wrong current password is refused with the hub's message", async () => {
      await byTestId("current-password").fill(`Wrong-${tag}`);
      await byTestId("new-password").fill(`Fourth-${tag}`);
      await byTestId("confirm-password").fill(`Fourth-${tag}`);
      await byTestId("change-password-submit").click();
      const text = (await page.locator('[data-testid="password-message"][data-state="error"]').textContent({ timeout: 10_000 })) ?? "";
      if (!text.includes("The current password is wrong")) throw new Error(`the form says: ${text}`);
      // Still signed in here.
      await page.reload();
      await byTestId("settings-page").waitFor({ timeout: 15_000 });
    });

    await step("Accounts: sign out a session from the list", async () => {
      await otherSignedIn(passwords[2]);
      await openSettings();
      await sessionCount(2);
      const row = page.locator('[data-testid="session-row"][data-current="false"]');
      const text = (await row.textContent()) ?? "";
      if (!/Chrome/.test(text) || !text.includes("127.0.0.1")) throw new Error(`the other session reads: ${text}`);
      await shot("two-sessions");
      await row.getByTestId("session-revoke").click();
      await sessionCount(1);
      await page.locator('[data-testid="sessions-message"][data-state="done"]').waitFor();
      await otherSignedOut();
    });

    await step("Accounts: sign out everywhere else", async () => {
      await otherSignedIn(passwords[2]);
      await page.reload();
      await byTestId("session-list").waitFor({ timeout: 15_000 });
      await sessionCount(2);
      await byTestId("revoke-other-sessions").click();
      await sessionCount(1);
      await otherSignedOut();
      if ((await sessionRows().first().getAttribute("data-current")) !== "true") throw new Error("the session left is not this device's");
    });

    await step("Accounts: the audit log shows all of it, newest first", async () => {
      await page.reload();
      await byTestId("audit-list").waitFor({ timeout: 15_000 });
      const rows = page.locator('[data-testid="audit-row"]');
      const actions = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-action")));
      const wanted = [
        "signed_up",
        "email_verified",
        "password_reset_requested",
        "password_reset",
        "signed_in",
        "sign_in_failed",
        "password_changed",
        "session_revoked",
        "sessions_revoked",
      ];
      const missing = wanted.filter((a) => !actions.includes(a));
      if (missing.length > 0) throw new Error(`the audit log lacks ${missing.join(", ")}; it has ${actions.join(", ")}`);
      if (actions[0] !== "sessions_revoked") throw new Error(`the newest entry is ${actions[0]}, expected sessions_revoked`);
      if (actions.at(-1) !== "signed_up") throw new Error(`the oldest entry is ${actions.at(-1)}, expected signed_up`);
      const first = (await rows.first().textContent()) ?? "";
      if (!first.includes("Other sessions signed out")) throw new Error(`the newest entry reads: ${first}`);
      const all = (await byTestId("audit-list").textContent()) ?? "";
      const leaked = passwords.filter((p) => all.includes(p));
      if (leaked.length > 0) throw new Error("the audit log shows a password");
      await byTestId("audit-list").scrollIntoViewIfNeeded();
      await shot("audit-log");
    });

    await step("Accounts: change the address by a link mailed to the new one", async () => {
      await byTestId("new-email").fill(newEmail);
      await byTestId("new-email-password").fill(passwords[2]);
      await byTestId("change-email-submit").click();
      const sent = (await page.locator('[data-testid="change-email-message"][data-state="done"]').textContent({ timeout: 10_000 })) ?? "";
      if (!sent.includes(newEmail)) throw new Error(`the form says: ${sent}`);
      const link = await mailedLink(newEmail, "verify-email");
      // Nothing changes until the link is opened.
      if ((await byTestId("settings-email").textContent()) !== email) throw new Error("the address changed before the link was opened");
      await page.goto(link);
      await page.locator('[data-testid="verify-result"][data-state="ok"]').waitFor({ timeout: 15_000 });
      await byTestId("verify-continue").click();
      await byTestId("settings-email").getByText(newEmail).waitFor({ timeout: 15_000 });
      await page.locator('[data-testid="email-status"][data-verified="true"]').waitFor();
      await byTestId("user-email").getByText(newEmail).waitFor({ timeout: 5_000 });
      const newest = () =>
        [...document.querySelectorAll('[data-testid="audit-row"]')].slice(0, 2).map((e) => e.getAttribute("data-action")).join();
      await page
        .waitForFunction(
          () => [...document.querySelectorAll('[data-testid="audit-row"]')].slice(0, 2).map((e) => e.getAttribute("data-action")).join() === "email_changed,email_change_requested",
          undefined,
          { timeout: 10_000, polling: 100 },
        )
        .catch(() => {}); // the check below says what is there instead
      const actions = await page.evaluate(newest);
      if (actions !== "email_changed,email_change_requested") throw new Error(`the newest audit entries are ${actions}`);
      email = newEmail;
    });

    await step("Accounts: start a project to delete with the account", async () => {
      await page.goto(`${base}/projects`);
      await byTestId("new-project").click();
      await byTestId("project-name-input").fill(projectName);
      await byTestId("create-project-submit").click();
      const row = page.locator(`[data-testid="project-row"][data-project-name="${projectName}"]`);
      await row.waitFor({ timeout: 15_000 });
      state.projectId = (await row.getAttribute("data-project-id")) ?? "";
      await byTestId("create-project-dialog").waitFor({ state: "hidden" });
      await row.getByTestId("project-start").click();
      await page.locator(`[data-testid="project-row"][data-project-name="${projectName}"][data-status="running"]`).waitFor({ timeout: VM_START_MS });
      if (!data) throw new Error("AETHER_E2E_DATA (the hub's data folder) is not set: the VM's home can't be checked");
      const dir = join(data, "vms", state.projectId);
      if (!existsSync(join(dir, "home"))) throw new Error(`the running VM has no home at ${dir}/home`);
      state.vmPid = Number(readFileSync(join(dir, "vm.pid"), "utf8").trim());
      if (!alive(state.vmPid)) throw new Error(`the VM's process ${state.vmPid} is not running`);
      if (vmProcesses(state.projectId).length === 0) throw new Error("no process carries the project's id");
    });

    await step("Accounts: deleting asks for the address and the right password", async () => {
      await openSettings();
      await byTestId("delete-account").click();
      await byTestId("delete-account-dialog").waitFor();
      const confirm = byTestId("delete-account-confirm");
      await byTestId("delete-password").fill(`Wrong-${tag}`);
      await byTestId("delete-confirm-email").fill("someone-else@example.com");
      if (!(await confirm.isDisabled())) throw new Error("delete is allowed without the account's address typed");
      await byTestId("delete-confirm-email").fill(email);
      await confirm.click();
      const text = (await byTestId("delete-account-error").textContent({ timeout: 10_000 })) ?? "";
      if (!text.includes("The current password is wrong")) throw new Error(`a wrong password got: ${text}`);
      await shot("delete-dialog");
    });

    await step("Accounts: delete the account", async () => {
      await byTestId("delete-password").fill(passwords[2]);
      await byTestId("delete-account-confirm").click();
      await byTestId("account-deleted-page").waitFor({ timeout: 60_000 });
      await shot("deleted");
    });

    await step("Accounts: its VM, its home and the user are gone", async () => {
      if (!data) throw new Error("AETHER_E2E_DATA is not set");
      const dir = join(data, "vms", state.projectId);
      const deadline = Date.now() + 30_000;
      while (existsSync(dir) || alive(state.vmPid) || vmProcesses(state.projectId).length > 0) {
        if (Date.now() > deadline) {
          throw new Error(`after 30 s: home ${existsSync(dir) ? "still there" : "gone"}, VM pid ${state.vmPid} ${alive(state.vmPid) ? "alive" : "gone"}, processes ${vmProcesses(state.projectId).join(",") || "none"}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      // These steps check many passwords from one address, so sign-in may
      // answer "Too many attempts" first: that is the limiter, not an
      // answer about the account. Ask again once it has refilled.
      const limited = Date.now() + 40_000;
      let refused = "";
      for (;;) {
        await signIn(page, passwords[2]);
        refused = (await page.locator('[data-testid="signin-form"] [role="alert"]').textContent({ timeout: 10_000 })) ?? "";
        if (!refused.includes("Too many attempts") || Date.now() > limited) break;
        await new Promise((r) => setTimeout(r, 3_000));
      }
      if (!refused.includes("Incorrect email or password")) throw new Error(`signing in as the deleted user got: ${refused}`);
    });
  } finally {
    await state.browser?.close().catch(() => {});
  }
}

/** Whether process `pid` exists (a zombie counts as gone). */
function alive(/** @type {number} */ pid) {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Pids of the processes whose environment names the project (aetherd and what it started). */
function vmProcesses(/** @type {string} */ projectId) {
  const needle = `AETHER_PROJECT_ID=${projectId}`;
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return alive(Number(n)) && readFileSync(`/proc/${n}/environ`, "latin1").split("\0").includes(needle);
      } catch {
        return false;
      }
    });
}
