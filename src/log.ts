/**
 * The server's log: one line per event on stderr, in the format the core writes too
 * (core/src/log.zig): text, `[2026-12-02T18:06:54.158Z] WARNING worker#0 pid 5973: message`,
 * or with `logFormat: "json"` one JSON object per line with `time`, `level`, `who`, `pid`,
 * `session` (when the message is about one: it begins "session N") and `message`.
 * @module
 */

import type { LogFormat, LogLevel } from "./options.ts";

const order: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

export class Logger {
  #min: number;
  #who: string;
  #json: boolean;

  /** `who`: the process's role as the log names it (`worker#0`, `manager`). */
  constructor(level: LogLevel, who: string, format: LogFormat = "text") {
    this.#min = order[level];
    this.#who = who;
    this.#json = format === "json";
  }

  /** `Server.set()` before start: another level, format, or role to name. */
  reset(level: LogLevel, who: string, format: LogFormat = "text"): void {
    this.#min = order[level];
    this.#who = who;
    this.#json = format === "json";
  }

  /** Who this process is, as its lines name it; whether they are JSON. */
  get identity(): { who: string; json: boolean } {
    return { who: this.#who, json: this.#json };
  }

  /** Whether debug lines are written (check before building one that costs work). */
  get debugging(): boolean {
    return this.#min === 0;
  }

  debug(message: string): void {
    this.#write("debug", message);
  }
  info(message: string): void {
    this.#write("info", message);
  }
  warning(message: string): void {
    this.#write("warning", message);
  }
  error(message: string, error?: unknown): void {
    const detail = error instanceof Error
      ? `: ${error.stack ?? error.message}`
      : error === undefined
      ? ""
      : `: ${String(error)}`;
    this.#write("error", message + detail);
  }

  #write(level: LogLevel, message: string) {
    if (order[level] < this.#min) return;
    const time = new Date().toISOString();
    if (this.#json) {
      const session = /^session (\d+)\b/.exec(message);
      console.error(JSON.stringify({
        time,
        level,
        who: this.#who,
        pid: Deno.pid,
        ...(session ? { session: Number(session[1]) } : {}),
        message,
      }));
      return;
    }
    console.error(`[${time}] ${level.toUpperCase()} ${this.#who} pid ${Deno.pid}: ${message}`);
  }
}
