// Drives the status page in headless Chromium (playwright-core, the system
// chromium): logs in, hammers a key until the page shows its policy's
// denied rate and the key in the top list, adds an override from the page
// and checks that decisions follow it, removes it again. Screenshots go to
// SHOTS (desktop and phone width). With RELOAD_ERROR, the page must show
// the last reload as failed with that text. Exit 0 on success; each
// failed step prints "FAIL: why" and exits 1.
// Usage: node ui.js BASE_URL ADMIN_KEY SHOTS_DIR [RELOAD_ERROR]
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");

const [base, adminKey, shots, reloadError] = process.argv.slice(2);
const HAMMER = { path: "/api/x", tenant: "hammer-tenant" };

async function decide(body) {
  const r = await fetch(base + "/v1/decide", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  return r.json();
}

// Decides the hammered key every 20 ms until stop() is called.
function hammer() {
  let running = true;
  const done = (async () => {
    while (running) {
      await decide(HAMMER);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return async () => { running = false; await done; };
}

async function step(what, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    throw new Error(what + ": " + e.message.split("\n")[0]);
  }
  console.log("ok   " + what + " (" + (Date.now() - t0) + " ms)");
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  let stop = null;
  try {
    await step("login form, then the app", async () => {
      await page.goto(base + "/ui");
      await page.fill("#key", "wrong-key");
      await page.click("#login-button");
      await page.waitForFunction(() =>
        document.getElementById("login-error").textContent.includes("401"),
        null, { timeout: 5000 });
      await page.fill("#key", adminKey);
      await page.click("#login-button");
      await page.waitForSelector("#app:not(.hidden)", { timeout: 5000 });
      await page.waitForSelector('.chart[data-policy="api"]', { timeout: 5000 });
    });
    if (reloadError) {
      await step("the last reload: failed, with its error", async () => {
        await page.waitForSelector('#reload[data-last="failed"]', { timeout: 5000 });
        const text = await page.textContent("#reload");
        if (!text.includes("last reload") || !text.includes(reloadError)) {
          throw new Error("reload line " + JSON.stringify(text));
        }
      });
    }
    await step("denied rate of api goes up while a key is hammered", async () => {
      stop = hammer();
      await page.waitForFunction(() => {
        const e = document.querySelector('.chart[data-policy="api"] .rate-denied');
        return e !== null && parseFloat(e.textContent) > 0;
      }, null, { timeout: 10000, polling: 200 });
      const other = await page.textContent('.chart[data-policy="other"] .rate-denied');
      if (parseFloat(other) !== 0) { throw new Error("other policy denied " + other); }
    });
    await step("the hammered key heads the top list", async () => {
      await page.selectOption("#top-policy", "api");
      await page.waitForSelector(
        '#top tbody tr:first-child[data-key=\'{"tenant":"hammer-tenant"}\']',
        { timeout: 6000 });
    });
    await page.screenshot({ path: path.join(shots, "ui.png"), fullPage: true });
    await stop();
    stop = null;
    await step("an override added from the page is followed", async () => {
      const before = await decide(HAMMER);
      if (before.allowed !== false) { throw new Error("not denied before"); }
      await page.click('#top tbody tr:first-child button');
      await page.selectOption("#ov-kind", "limits");
      await page.fill("#ov-requests", "100000");
      await page.fill("#ov-per", "1m");
      await page.click("#ov-add");
      await page.waitForSelector("#overrides tbody tr:has-text(\"hammer-tenant\")",
        { timeout: 5000 });
      const t0 = Date.now();
      let v;
      do {
        v = await decide(HAMMER);
      } while (!(v.allowed && v.override === "admin") && Date.now() - t0 < 3000);
      if (!(v.allowed && v.override === "admin")) {
        throw new Error("decision after the override: " + JSON.stringify(v));
      }
    });
    await step("the override removed from the page: denied again", async () => {
      await page.click("#overrides tbody tr:has-text(\"hammer-tenant\") button");
      await page.waitForFunction(() =>
        !document.querySelector("#overrides tbody").textContent.includes("hammer-tenant"),
        null, { timeout: 5000 });
      const t0 = Date.now();
      let v;
      do {
        v = await decide(HAMMER);
      } while (v.allowed && Date.now() - t0 < 3000);
      if (v.allowed) { throw new Error("still allowed: " + JSON.stringify(v)); }
    });
    await step("phone width: one column, nothing wider than the screen", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(300);
      const r = await page.evaluate(() => {
        const secs = [...document.querySelectorAll("main > section")];
        return { width: document.documentElement.scrollWidth,
          lefts: [...new Set(secs.map((s) => Math.round(s.getBoundingClientRect().left)))] };
      });
      if (r.width > 390) { throw new Error("page is " + r.width + " px wide"); }
      if (r.lefts.length !== 1) { throw new Error("columns at " + r.lefts); }
      await page.screenshot({ path: path.join(shots, "ui-phone.png"), fullPage: true });
    });
    if (errors.length) { throw new Error("page errors: " + errors.join("; ")); }
  } finally {
    if (stop !== null) { await stop(); }
    await browser.close();
  }
}

main().then(() => process.exit(0), (e) => {
  console.log("FAIL: " + e.message);
  process.exit(1);
});
