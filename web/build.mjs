// Builds the JavaScript parts of parley into a build directory:
//
//   node web/build.mjs BUILD_DIR
//
//   BUILD_DIR/sdk-js/       the SDK and its tests (tsc, sdk/js/tsconfig.json)
//   BUILD_DIR/web-test-js/  the browser test (tsc, web/test/tsconfig.json)
//   BUILD_DIR/web/          the chat page parleyd serves at / (web_root):
//                           index.html and assets/<name>.<hash>.{js,css}
//
// The page is plain ES modules compiled by tsc, no bundler: each module is
// renamed after a hash of its content (its imports rewritten to the hashed
// names of what it imports, leaves first), so every asset may be cached
// forever and only index.html is revalidated. index.html preloads all
// modules so the browser fetches them in parallel.
//
// First, `npm ci` runs in the repository root when node_modules is missing
// or older than package-lock.json (CMake holds a lock around this script).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "build"));

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: root, stdio: "inherit" });
}

// 1. Dependencies (typescript, ws, playwright-core and types), exactly as locked.
const stamp = join(root, "node_modules", ".package-lock.json");
if (mtime(stamp) < Math.max(mtime(join(root, "package-lock.json")), mtime(join(root, "package.json")))) {
  console.log("web: npm ci");
  run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
}
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

// 2. Type-check and compile.
mkdirSync(out, { recursive: true });
run(process.execPath, [tsc, "-p", join(root, "sdk/js/tsconfig.json"), "--outDir", join(out, "sdk-js")]);
run(process.execPath, [tsc, "-p", join(root, "web/test/tsconfig.json"), "--outDir", join(out, "web-test-js")]);
const pageJs = join(out, "web-js");
rmSync(pageJs, { recursive: true, force: true });
run(process.execPath, [tsc, "-p", join(root, "web/tsconfig.json"), "--outDir", pageJs]);

// The compiled tests are ES modules.
for (const dir of ["sdk-js", "web-test-js"]) writeFileSync(join(out, dir, "package.json"), '{ "type": "module" }\n');

// Compiled tests import ws and playwright-core: let them resolve from a
// build directory outside the source tree too.
const link = join(out, "node_modules");
if (!existsSync(link)) symlinkSync(join(root, "node_modules"), link, "dir");

// 3. Content-hashed assets.
const tmp = join(out, "web.tmp");
rmSync(tmp, { recursive: true, force: true });
mkdirSync(join(tmp, "assets"), { recursive: true });

const hashOf = (text) => createHash("sha256").update(text).digest("hex").slice(0, 12);
const IMPORT = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']+)\2/g;
const emitted = new Map(); // absolute .js path -> hashed asset name
const order = [];

function emitModule(file, stack = []) {
  const done = emitted.get(file);
  if (done) return done;
  if (stack.includes(file)) throw new Error("import cycle: " + [...stack, file].map((f) => relative(pageJs, f)).join(" -> "));
  let text = readFileSync(file, "utf8").replace(/^\/\/# sourceMappingURL=.*$/m, "");
  text = text.replace(IMPORT, (all, head, quote, spec) => {
    const name = emitModule(resolve(dirname(file), spec), [...stack, file]);
    return `${head}${quote}./${name}${quote}`;
  });
  const name = `${basename(file, ".js")}.${hashOf(text)}.js`;
  writeFileSync(join(tmp, "assets", name), text);
  emitted.set(file, name);
  order.push(name);
  return name;
}

const main = emitModule(join(pageJs, "web", "src", "main.js"));
const css = readFileSync(join(root, "web", "src", "style.css"), "utf8");
const cssName = `style.${hashOf(css)}.css`;
writeFileSync(join(tmp, "assets", cssName), css);

const tags = [
  `<link rel="stylesheet" href="assets/${cssName}">`,
  ...order.filter((n) => n !== main).map((n) => `<link rel="modulepreload" href="assets/${n}">`),
  `<script type="module" src="assets/${main}"></script>`,
].join("\n    ");
const html = readFileSync(join(root, "web", "index.html"), "utf8");
if (!html.includes("<!-- assets -->")) throw new Error("web/index.html lacks the <!-- assets --> marker");
writeFileSync(join(tmp, "index.html"), html.replace("<!-- assets -->", tags));

// 4. Replace the previous page in one step.
const dest = join(out, "web");
const old = join(out, "web.old");
rmSync(old, { recursive: true, force: true });
if (existsSync(dest)) renameSync(dest, old);
renameSync(tmp, dest);
rmSync(old, { recursive: true, force: true });
console.log(`web: ${order.length} modules, ${cssName} -> ${relative(process.cwd(), dest) || dest}`);
