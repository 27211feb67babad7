// The web chat page in a real browser: Debian's Chromium, driven by
// playwright-core, against a real parleyd serving the built page.
//
//   PARLEYD          the server binary (default build/parleyd)
//   PARLEY_WEB_ROOT  the built page (default build/web)
//   PARLEY_SHOTS     where screenshots go (default build/web-test)
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Each step leaves a screenshot so a person can look at what the test saw.
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

import { Parleyd, uid } from "../../sdk/js/test/parleyd.js";

const SHOTS = resolve(process.env.PARLEY_SHOTS ?? "build/web-test");
const WEB_ROOT = resolve(process.env.PARLEY_WEB_ROOT ?? "build/web");
const PASSWORD = "correct horse battery";
const WAIT = 10_000;

let server: Parleyd;
let browser: Browser;
let shot = 0;

before(async () => {
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  server = await Parleyd.start({ args: ["--web-root", WEB_ROOT] });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.cleanup();
});

async function snap(page: Page, name: string): Promise<void> {
  shot++;
  await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`) });
}

/** Polls until f() holds (f may throw meanwhile); fails with what() after WAIT. */
async function until(f: () => Promise<boolean>, what: () => Promise<string> | string): Promise<void> {
  const end = Date.now() + WAIT;
  for (;;) {
    try {
      if (await f()) return;
    } catch {
      // Not there yet.
    }
    if (Date.now() > end) throw new Error("timed out: " + (await what()));
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function texts(page: Page): Promise<string[]> {
  return page.locator(".msgs .msg .text").allTextContents();
}

async function seeTexts(page: Page, want: string[]): Promise<void> {
  await until(
    async () => JSON.stringify(await texts(page)) === JSON.stringify(want),
    async () => `want ${JSON.stringify(want)}, see ${JSON.stringify(await texts(page))}`,
  );
}

async function status(page: Page): Promise<string> {
  return (await page.getByRole("status").textContent()) ?? "";
}

async function signUp(ctx: BrowserContext, user: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on("pageerror", (err) => {
    throw err;
  });
  await page.goto(server.httpUrl + "/");
  await page.getByLabel("User id", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up", exact: true }).click();
  await page.getByRole("navigation", { name: "Chats" }).waitFor({ timeout: WAIT });
  await until(async () => (await status(page)) === "Online", () => status(page));
  return page;
}

async function send(page: Page, text: string): Promise<void> {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

async function openConv(page: Page, name: string): Promise<void> {
  await page.getByRole("button", { name }).click();
  await page.getByLabel("Message", { exact: true }).waitFor({ timeout: WAIT });
}

test("the page: served with the right headers, sign up, 1:1 chat, typing, receipts, offline catch-up, groups and channels", async () => {
  // The page and its assets, as a browser gets them.
  const index = await fetch(server.httpUrl + "/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type") ?? "", /^text\/html/);
  assert.equal(index.headers.get("cache-control"), "no-cache");
  const html = await index.text();
  const asset = /src="(assets\/main\.[0-9a-f]+\.js)"/.exec(html)?.[1];
  assert.ok(asset, "index.html names the hashed entry module");
  const js = await fetch(`${server.httpUrl}/${asset}`);
  assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.match(js.headers.get("cache-control") ?? "", /immutable/);

  const alice = uid("alice");
  const bob = uid("bob");
  const carol = uid("carol");
  const wide = { viewport: { width: 1100, height: 700 } };
  const narrow = { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true };
  const ctxA = await browser.newContext(wide);
  const ctxB = await browser.newContext(narrow);
  ctxA.setDefaultTimeout(WAIT);
  ctxB.setDefaultTimeout(WAIT);

  // Sign up (the first screen, then the empty app).
  const pa0 = await ctxA.newPage();
  await pa0.goto(server.httpUrl + "/");
  await pa0.getByLabel("User id", { exact: true }).waitFor();
  await snap(pa0, "sign-in-page");
  await pa0.close();
  const a = await signUp(ctxA, alice);
  await snap(a, "alice-signed-up");
  const b = await signUp(ctxB, bob);
  await snap(b, "bob-signed-up-narrow");

  // Alice opens a chat with Bob by user id and writes.
  await a.getByLabel("User id", { exact: true }).fill(bob);
  await a.getByRole("button", { name: "New chat", exact: true }).click();
  await a.getByLabel("Message", { exact: true }).waitFor();
  await send(a, "Hi Bob!");
  await seeTexts(a, ["Hi Bob!"]);
  await send(a, "Are you there?");
  await seeTexts(a, ["Hi Bob!", "Are you there?"]);

  // Bob sees the chat in his home list with two unread, opens it.
  const convB = b.getByRole("button", { name: `${alice}, 2 unread` });
  await convB.waitFor({ timeout: WAIT });
  await snap(b, "bob-home-unread");
  await convB.click();
  await seeTexts(b, ["Hi Bob!", "Are you there?"]);

  // Reading it sends a receipt: Alice's last message shows Read.
  await until(async () => (await a.locator(".msg.mine .meta").last().textContent())?.includes("Read") === true, async () => `meta: ${await a.locator(".msg.mine .meta").last().textContent()}`);
  await snap(a, "alice-read-receipt");

  // Bob types: Alice sees it. Then he answers.
  await b.getByLabel("Message", { exact: true }).pressSequentially("Yes, here", { delay: 20 });
  await a.getByText(`${bob} is typing…`).waitFor({ timeout: WAIT });
  await snap(a, "alice-sees-typing");
  await b.getByRole("button", { name: "Send", exact: true }).click();
  await seeTexts(a, ["Hi Bob!", "Are you there?", "Yes, here"]);
  await seeTexts(b, ["Hi Bob!", "Are you there?", "Yes, here"]);
  await until(async () => (await a.getByText(`${bob} is typing…`).count()) === 0, () => "typing line cleared by the message");
  // Presence: Bob is online in Alice's list and header.
  await a.locator(".chat-sub", { hasText: "online" }).waitFor({ timeout: WAIT });
  await snap(b, "bob-chat-narrow");

  // Bob goes offline; Alice writes three messages; Bob comes back and gets them in order.
  await ctxB.setOffline(true);
  await until(async () => (await status(b)).startsWith("Offline"), () => status(b));
  await snap(b, "bob-offline");
  for (const t of ["While you were away 1", "While you were away 2", "While you were away 3"]) await send(a, t);
  await seeTexts(a, ["Hi Bob!", "Are you there?", "Yes, here", "While you were away 1", "While you were away 2", "While you were away 3"]);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await texts(b), ["Hi Bob!", "Are you there?", "Yes, here"], "nothing reaches Bob while offline");
  await ctxB.setOffline(false);
  await seeTexts(b, ["Hi Bob!", "Are you there?", "Yes, here", "While you were away 1", "While you were away 2", "While you were away 3"]);
  await until(async () => (await status(b)) === "Online", () => status(b));
  await snap(b, "bob-back-online-in-order");
  await until(async () => (await a.locator(".msg.mine .meta").last().textContent())?.includes("Read") === true, () => "read after catch-up");

  // History scroll-back: a reloaded page shows the conversation from the server.
  await b.reload();
  await b.getByRole("button", { name: alice }).click();
  await seeTexts(b, ["Hi Bob!", "Are you there?", "Yes, here", "While you were away 1", "While you were away 2", "While you were away 3"]);

  // A group of three, then a channel joined through search.
  const ctxC = await browser.newContext(wide);
  ctxC.setDefaultTimeout(WAIT);
  const c = await signUp(ctxC, carol);
  await a.getByLabel("Group name").fill("Trio");
  await a.getByLabel("Members").fill(`${bob}, ${carol}`);
  await a.getByRole("button", { name: "New group", exact: true }).click();
  await a.getByRole("heading", { name: "Trio" }).waitFor({ timeout: WAIT });
  await send(a, "Welcome to the trio");
  await seeTexts(a, ["Welcome to the trio"]);
  await b.getByRole("button", { name: "Back to chats" }).click();
  await openConv(b, "Trio");
  await openConv(c, "Trio");
  await seeTexts(b, ["Welcome to the trio"]);
  await seeTexts(c, ["Welcome to the trio"]);
  await send(c, "Carol here");
  await send(b, "Bob too");
  for (const p of [a, b, c]) await until(async () => (await texts(p)).length === 3, async () => JSON.stringify(await texts(p)));
  const order = await texts(a);
  assert.deepEqual(await texts(b), order, "everyone sees one order");
  assert.deepEqual(await texts(c), order, "everyone sees one order");
  await snap(c, "carol-group-of-three");

  const lobby = uid("lobby");
  await a.getByLabel("Group name").fill(lobby);
  await a.getByLabel("Public channel").check();
  await a.getByRole("button", { name: "New group", exact: true }).click();
  await a.getByRole("heading", { name: `#${lobby}` }).waitFor({ timeout: WAIT });
  await c.getByLabel("Search").fill(lobby.slice(0, 8));
  await c.getByRole("button", { name: "Join", exact: true }).waitFor({ timeout: WAIT });
  await snap(c, "carol-channel-search");
  await c.getByRole("button", { name: "Join", exact: true }).click();
  await c.getByRole("heading", { name: `#${lobby}` }).waitFor({ timeout: WAIT });
  await send(c, "Hello lobby");
  await seeTexts(a, ["Hello lobby"]);
  await send(a, "Welcome, Carol");
  await seeTexts(c, ["Hello lobby", "Welcome, Carol"]);
  await snap(a, "alice-channel");
  await snap(c, "carol-channel");

  // Alice logs in on another web page: this one is kicked and says so, without reconnecting.
  const ctxA2 = await browser.newContext(wide);
  ctxA2.setDefaultTimeout(WAIT);
  const a2 = await ctxA2.newPage();
  await a2.goto(server.httpUrl + "/");
  await a2.getByLabel("User id", { exact: true }).fill(alice);
  await a2.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await a2.getByRole("button", { name: "Log in", exact: true }).click();
  await until(async () => (await status(a2)) === "Online", () => status(a2));
  await a.getByText("You signed in on another web page").waitFor({ timeout: WAIT });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await status(a), "Disconnected", "a kicked page does not reconnect by itself");
  await snap(a, "alice-kicked-by-another-page");
  await ctxA2.close();

  await ctxA.close();
  await ctxB.close();
  await ctxC.close();
});

test("log in, then history scroll-back loads older pages", async () => {
  const u1 = uid("hist");
  const u2 = uid("hist");
  const signup = async (user: string): Promise<string> => {
    const res = await fetch(server.httpUrl + "/v1/signup", { method: "POST", body: JSON.stringify({ user, password: PASSWORD }) });
    return ((await res.json()) as { token: string }).token;
  };
  await signup(u1);
  const token = await signup(u2);
  // 75 messages from u2 before u1 ever opens the page.
  for (let i = 1; i <= 75; i++) {
    const res = await fetch(server.httpUrl + "/v1/messages", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      body: JSON.stringify({ to: u1, text: `old ${i}`, cmid: `h${i}` }),
    });
    assert.equal(res.status, 200);
  }
  const ctx = await browser.newContext({ viewport: { width: 900, height: 600 } });
  ctx.setDefaultTimeout(WAIT);
  const p = await ctx.newPage();
  await p.goto(server.httpUrl + "/");
  await p.getByLabel("User id", { exact: true }).fill(u1);
  await p.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await p.getByRole("button", { name: "Log in", exact: true }).click();
  await p.getByRole("button", { name: `${u2}, 75 unread` }).click();
  await until(async () => (await texts(p)).length === 30, async () => `${(await texts(p)).length} shown`);
  assert.equal((await texts(p))[29], "old 75");
  // The button sits at the top of the log, where scrolling also loads a page: a real click
  // first scrolls it into view and so may load two pages. Dispatching the click tests the
  // button alone; the scroll is tested next.
  const older = p.getByRole("button", { name: "Load older messages" });
  await older.waitFor({ state: "visible" });
  await older.dispatchEvent("click");
  await until(async () => (await texts(p)).length === 60, async () => `${(await texts(p)).length} shown`);
  await p.locator(".log").evaluate((el) => {
    el.scrollTop = 0;
    el.dispatchEvent(new Event("scroll"));
  });
  await until(async () => (await texts(p)).length === 75, async () => `${(await texts(p)).length} shown`);
  const all = await texts(p);
  assert.deepEqual(all, Array.from({ length: 75 }, (_, i) => `old ${i + 1}`));
  await p.locator(".log").evaluate((el) => {
    el.scrollTop = 0;
  });
  await snap(p, "history-scrolled-back");
  await ctx.close();
});
