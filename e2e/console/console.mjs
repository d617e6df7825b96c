// Clicks through every page of Junction's console in Debian's chromium,
// against a running `junction serve` that e2e/console_test.go started with
// a healthy sink "good" and a failing sink "bad".
//
// Environment: ADMIN (the admin URL), INGEST (the http source's URL),
// TOKEN (an admin token, when admin.auth is on), SHOTS (a directory for a
// screenshot of each page, optional), CHROMIUM (default /usr/bin/chromium).
// Exit 0 when every check passed, else 1 with the failed check.
import { chromium } from "playwright-core";

const admin = process.env.ADMIN;
const ingest = process.env.INGEST;
const token = process.env.TOKEN || "";
const shots = process.env.SHOTS || "";
if (!admin || !ingest) {
  console.error("ADMIN and INGEST must be set");
  process.exit(2);
}

const errors = [];
let step = "launch";
const check = (ok, what) => { if (!ok) throw new Error(what); };

async function send(id, type, data) {
  const resp = await fetch(ingest, {
    method: "POST",
    headers: { "ce-specversion": "1.0", "ce-id": id, "ce-source": "/console-test", "ce-type": type, "content-type": "application/json" },
    body: JSON.stringify(data),
  });
  check(resp.status === 202, `send ${id}: ${resp.status}`);
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/console-${name}.png`, fullPage: true });
}

// noSideways checks that the page does not scroll sideways.
async function noSideways(page, what) {
  const { sw, cw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
  check(sw <= cw, `${what}: the page scrolls sideways at ${cw} px (content ${sw} px wide)`);
}

function watch(page) {
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${step}: console error: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`${step}: page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (!r.url().endsWith("/api/v1/tail")) errors.push(`${step}: request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(admin)) errors.push(`${step}: a request left the admin listener: ${r.url()}`);
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  watch(page);

  step = "sign-in";
  await page.goto(admin + "/");
  if (token) {
    await page.getByLabel("Admin token").waitFor();
    check(!(await page.locator("nav").isVisible()), "the navigation shows before sign-in");
    check((await page.locator("main table").count()) === 0, "data shows before sign-in");
    await shot(page, "signin");
    await page.getByLabel("Admin token").fill("not-the-token");
    await page.keyboard.press("Enter");
    await page.getByText("That token was refused.").waitFor();
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.locator("nav").waitFor();

  step = "overview";
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator('tr[data-sink="bad"].failing').waitFor({ timeout: 20000 });
  await page.locator('tr[data-sink="good"]:not(.failing)').waitFor();
  check((await page.locator('tr[data-sink="good"]').innerText()).includes("healthy"), "the healthy sink is not shown healthy");
  check((await page.locator('tr[data-sink="bad"]').innerText()).includes("failing"), "the failing sink is not shown failing");
  // The second sample (2 s later) gives rates.
  await page.locator('tr[data-sink="good"]', { hasText: "/s" }).waitFor({ timeout: 10000 });
  await shot(page, "overview");

  step = "dead letters (by keyboard)";
  await page.focus('nav a[data-page="deadletters"]');
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Dead letters" }).waitFor();
  await page.locator("tr[data-id]").first().waitFor();
  const before = await page.locator("tr[data-id]").count();
  check(before >= 2, `expected at least 2 dead letters, got ${before}`);
  await page.getByLabel("Sink").fill("bad");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator("tr[data-id]").first().getByRole("button", { name: "Inspect" }).click();
  const detail = page.locator("#dl-detail");
  await detail.getByRole("heading", { name: /^Dead letter / }).waitFor();
  const text = await detail.innerText();
  check(text.includes("com.example.broken"), "the inspected dead letter does not show its event");
  check(/400/.test(text), "the inspected dead letter does not show the sink's error");
  await detail.locator("table").waitFor({ timeout: 10000 });
  await shot(page, "deadletters");
  await page.locator("tr[data-id] input[type=checkbox]").first().check();
  await page.getByRole("button", { name: "Redrive selected" }).click();
  await page.locator("#notice", { hasText: "Redriven: 1" }).waitFor();

  step = "trace";
  await page.getByRole("link", { name: "Trace" }).click();
  await page.getByLabel("Event id").fill("order-1");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: "Event order-1" }).waitFor();
  const tr = await page.locator("main").innerText();
  check(tr.includes("Route orders") && tr.includes("delivered"), "the trace of order-1 does not show its delivery");
  await shot(page, "trace");
  await page.getByLabel("Event id").fill("no-such-event");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No event with that id").waitFor();

  step = "live tail";
  await page.getByRole("link", { name: "Live tail" }).click();
  await page.locator("#tail-status", { hasText: "Live." }).waitFor();
  await send("tail-1", "com.example.order", { amount: 7 });
  await page.locator("#tail-list li", { hasText: "tail-1" }).waitFor();
  await page.getByRole("button", { name: "Pause" }).click();
  await send("tail-2", "com.example.order", { amount: 8 });
  await page.locator("#tail-count", { hasText: /^2 events/ }).waitFor();
  check((await page.locator("#tail-list li", { hasText: "tail-2" }).count()) === 0, "a paused tail showed a new event");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByLabel("Filter").fill("no-match");
  await send("tail-3", "com.example.order", { amount: 9 });
  await page.locator("#tail-count", { hasText: /^3 events/ }).waitFor();
  check((await page.locator("#tail-list li", { hasText: "tail-3" }).count()) === 0, "the filter let a non-matching event through");
  await page.getByLabel("Filter").fill("");
  await shot(page, "tail");

  step = "route sandbox";
  await page.getByRole("link", { name: "Route sandbox" }).click();
  await page.getByLabel("Event").fill(JSON.stringify({
    specversion: "1.0", id: "sb-1", source: "/shop", type: "com.example.order",
    datacontenttype: "application/json", data: { amount: 150 },
  }));
  await page.getByRole("button", { name: "Test routes" }).click();
  await page.locator('[data-route="orders"]').waitFor();
  check((await page.locator('[data-route="orders"]').innerText()).includes("matches"), "route orders does not match in the sandbox");
  check((await page.locator('[data-route="orders"]').innerText()).includes("Sink good"), "the sandbox does not show what sink good receives");
  check((await page.locator('[data-route="broken"]').innerText()).includes("does not match"), "route broken matches in the sandbox");
  await shot(page, "sandbox");
  await page.getByLabel("Event").fill("{not json");
  await page.getByRole("button", { name: "Test routes" }).click();
  await page.getByText(/^Not JSON/).waitFor();

  step = "phone";
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p2 = await phone.newPage();
  watch(p2);
  if (token) await p2.addInitScript((t) => sessionStorage.setItem("junction-token", t), token);
  for (const [hash, heading] of [["overview", "Overview"], ["deadletters", "Dead letters"], ["trace?id=order-1", "Event order-1"], ["tail", "Live tail"], ["sandbox", "Route sandbox"]]) {
    step = "phone " + hash;
    await p2.goto(admin + "/#/" + hash);
    await p2.getByRole("heading", { name: heading }).first().waitFor();
    if (hash === "deadletters") {
      await p2.locator("tr[data-id]").first().getByRole("button", { name: "Inspect" }).click();
      await p2.locator("#dl-detail table").waitFor({ timeout: 10000 });
    }
    await noSideways(p2, hash);
    if (hash === "overview") await shot(p2, "phone");
  }
  await phone.close();

  if (token) {
    step = "sign out";
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Admin token").waitFor();
  }
  check(errors.length === 0, errors.join("\n"));
  console.log("console: every page checked");
} catch (err) {
  console.error(`console test failed at "${step}": ${err.message}`);
  if (errors.length) console.error(errors.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
