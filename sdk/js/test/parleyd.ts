// Test helpers: a real parleyd on free ports with a temporary data
// directory (like tests/e2e/parleytest.py), and small waiting utilities.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const SANITIZER_MARKS = ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"];

/** A port that was free a moment ago (for restarts on the same port). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => ok(port));
    });
  });
}

export interface ParleydOptions {
  /** Data directory (default: a new temporary one, removed by cleanup()). */
  data?: string;
  /** HTTP port (default 0: any free one). */
  port?: number;
  args?: string[];
  env?: Record<string, string>;
}

export class Parleyd {
  readonly data: string;
  private readonly ownData: boolean;
  private readonly args: string[];
  private readonly env: Record<string, string>;
  private proc: ChildProcess | undefined;
  /** Exit code once the process ended and its stderr was read to the end. */
  private closedCode: number | null | undefined;
  private wantPort: number;
  port = 0;
  log: string[] = [];

  private constructor(o: ParleydOptions) {
    this.ownData = o.data === undefined;
    this.data = o.data ?? mkdtempSync(join(tmpdir(), "parley-sdk-"));
    this.wantPort = o.port ?? 0;
    this.args = o.args ?? [];
    this.env = o.env ?? {};
  }

  static async start(o: ParleydOptions = {}): Promise<Parleyd> {
    const s = new Parleyd(o);
    await s.start();
    return s;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  async start(): Promise<void> {
    const bin = process.env.PARLEYD ?? resolve("build/parleyd");
    const args = [
      "--data", this.data,
      "--http", `127.0.0.1:${this.wantPort}`,
      "--tcp", "127.0.0.1:0",
      "--udp", "127.0.0.1:0",
      "--workers", "2",
      "--shutdown-grace-ms", "100",
      "--argon2-ops", "1",
      "--argon2-mem", "8192",
      ...this.args,
    ];
    const proc = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...this.env } });
    this.proc = proc;
    this.closedCode = undefined;
    proc.on("close", (code) => {
      this.closedCode = code;
    });
    await new Promise<void>((ok, fail) => {
      let buf = "";
      const timer = setTimeout(() => fail(new Error("parleyd did not start:\n" + this.log.join(""))), 15_000);
      proc.stderr?.setEncoding("utf8");
      proc.stderr?.on("data", (chunk: string) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl + 1);
          buf = buf.slice(nl + 1);
          this.log.push(line);
          if (line.includes('"parleyd started"')) {
            const rec = JSON.parse(line) as { http_port: string };
            this.port = Number(rec.http_port);
            this.wantPort = this.port;
            clearTimeout(timer);
            ok();
          }
        }
      });
      proc.on("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`parleyd exited with ${code}:\n` + this.log.join("")));
      });
    });
  }

  /** SIGTERM (goaway, then close), and expect a clean exit. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    // "close", not "exit": the last lines of stderr (a sanitizer report) are read by then.
    const code = await new Promise<number | null>((ok) => {
      if (this.closedCode !== undefined) return ok(this.closedCode);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      proc.once("close", (c) => {
        clearTimeout(timer);
        ok(c);
      });
      proc.kill("SIGTERM");
    });
    this.checkLog();
    if (code !== 0) throw new Error(`parleyd exited with ${code}:\n` + this.log.join(""));
  }

  checkLog(): void {
    const text = this.log.join("");
    for (const mark of SANITIZER_MARKS) if (text.includes(mark)) throw new Error("sanitizer report:\n" + text);
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (this.ownData) rmSync(this.data, { recursive: true, force: true });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

/** Polls pred until it holds; fails with what() after timeoutMs. */
export async function waitFor(pred: () => boolean, what: () => string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what());
    await sleep(20);
  }
}

let counter = 0;
/** A user id unique to this test run. */
export function uid(prefix: string): string {
  counter++;
  return `${prefix}${counter}_${Math.random().toString(36).slice(2, 8)}`;
}
