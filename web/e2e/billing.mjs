// Browser steps for usage and idle stop, run by run.mjs while the
// project's VM runs: the project list shows the VM's idle countdown, and
// the billing page shows this month's compute (the running VM's included),
// the chart, the limits and the plans above; the user upgrades to Pro
// through (the fake) Stripe Checkout and sees the plan and its limits
// change. Ends back in the workspace.

/**
 * @param {{
 *   step: (name: string, body: () => Promise<void>) => Promise<void>,
 *   page: import("playwright-core").Page,
 *   base: string,
 *   run: { projectId: string },
 * }} t
 */
export async function billingSteps({ step, page, base, run }) {
  const byTestId = (/** @type {string} */ id) => page.getByTestId(id);

  await step("The project list shows the running VM's idle countdown", async () => {
    await page.goto(`${base}/projects`);
    const row = page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`);
    const countdown = row.getByTestId("idle-countdown");
    await countdown.waitFor({ timeout: 30_000 });
    const first = await countdown.textContent();
    if (!/^Stops in \d+:\d\d(:\d\d)? if idle/.test(first ?? "")) throw new Error(`countdown says ${JSON.stringify(first)}`);
    // It counts down by itself.
    await page.waitForFunction(
      ([id, before]) => {
        const el = document.querySelector(`[data-project-id="${id}"] [data-testid="idle-countdown"]`);
        return el !== null && el.textContent !== before;
      },
      [run.projectId, first],
      { timeout: 10_000 },
    );
  });

  await step("The billing page shows this month's compute and the plans above", async () => {
    await byTestId("billing-link").click();
    await byTestId("billing-page").waitFor();
    await byTestId("usage-chart").waitFor({ timeout: 15_000 });
    const used = await page.waitForFunction(
      () => {
        const bars = [...document.querySelectorAll('[data-testid="usage-bar"]')];
        const total = bars.reduce((s, b) => s + Number(b.getAttribute("data-seconds") ?? 0), 0);
        return total > 0 ? total : null;
      },
      undefined,
      { timeout: 30_000 },
    );
    if (Number(await used.jsonValue()) <= 0) throw new Error("no compute in the chart");
    const project = page.locator(`[data-testid="usage-project"][data-project-id="${run.projectId}"]`);
    await project.waitFor({ timeout: 10_000 });
    await byTestId("meter-compute").waitFor();
    const plans = await byTestId("higher-plans").textContent();
    if (!plans?.includes("pro") && !plans?.toLowerCase().includes("pro")) throw new Error(`higher plans: ${plans}`);
    const idle = await byTestId("idle-timeout").textContent();
    if (!idle?.includes("Idle machines stop after")) throw new Error(`idle timeout: ${idle}`);
  });

  await step("Upgrade to Pro through Stripe Checkout: the plan and its limits change", async () => {
    // The fake Stripe's control route stands in for paying on Checkout.
    const control = process.env.AETHER_E2E_STRIPE?.replace(/\/+$/, "");
    if (!control) throw new Error("AETHER_E2E_STRIPE (the fake Stripe's control URL) is not set: scripts/test.sh starts it");
    const limits = page.locator("section", { has: page.getByRole("heading", { name: "Your plan's limits" }) });
    const hoursLimit = () => limits.locator("li", { hasText: "compute hours a month" }).textContent();
    const before = await hoursLimit();
    if (!/^Free plan/.test((await byTestId("billing-plan").textContent()) ?? "")) throw new Error("not on the free plan before paying");
    /** @type {string[]} */
    const paid = [];
    /** @type {unknown} */
    let failure = null;
    await page.route("https://checkout.stripe.com/**", async (route) => {
      try {
        const session = new URL(route.request().url()).pathname.split("/").pop() ?? "";
        const res = await fetch(`${control}/pay?session=${encodeURIComponent(session)}&hub=${encodeURIComponent(base)}`, { method: "POST" });
        const body = await res.json();
        if (!res.ok) throw new Error(`paying ${session}: ${res.status} ${JSON.stringify(body)}`);
        paid.push(session);
        await route.fulfill({ status: 303, headers: { location: body.success_url } });
      } catch (e) {
        failure = e instanceof Error && e.cause ? new Error(`${e.message}: ${String(e.cause)}`) : e;
        await route.fulfill({ status: 500, contentType: "text/plain", body: String(e) });
      }
    });
    try {
      await byTestId("upgrade-pro").click();
      // Stripe sends the browser back to the hub's success URL, whose
      // page sends a signed-in user on to the projects page: wait for that
      // last navigation, or it would cut short the next one.
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (failure) throw failure;
        const here = new URL(page.url());
        if (paid.length > 0 && here.origin === new URL(base).origin && here.pathname === "/projects") break;
        if (Date.now() > deadline) throw new Error(`still at ${page.url()} after paying ${JSON.stringify(paid)}`);
        await page.waitForTimeout(100);
      }
    } finally {
      await page.unroute("https://checkout.stripe.com/**");
    }
    if (paid.length !== 1 || !paid[0].startsWith("cs_")) throw new Error(`checkout sessions paid: ${JSON.stringify(paid)}`);
    await page.goto(`${base}/billing`);
    await page.waitForFunction(
      () => /^Pro plan/.test(document.querySelector('[data-testid="billing-plan"]')?.textContent ?? ""),
      undefined,
      { timeout: 15_000 },
    );
    const after = await hoursLimit();
    if (after === before) throw new Error(`the compute limit did not change: ${after}`);
    // Pro is no longer offered; the portal is.
    if ((await byTestId("upgrade-pro").count()) !== 0) throw new Error("still offered Pro after paying for it");
    await byTestId("manage-billing").waitFor();
  });

  await step("Back to the workspace", async () => {
    await page.goto(`${base}/p/${encodeURIComponent(run.projectId)}`);
    await byTestId("stop-vm").waitFor({ timeout: 30_000 });
  });
}
