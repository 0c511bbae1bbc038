/**
 * The server's log: one line per event on stderr, with the level, the process role and id.
 * @module
 */

import type { LogLevel } from "./options.ts";

const order: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

export class Logger {
  #min: number;
  #who: string;

  constructor(level: LogLevel, who: string) {
    this.#min = order[level];
    this.#who = who;
  }

  /** `Server.set()` before start: another level, or another role to name. */
  reset(level: LogLevel, who: string): void {
    this.#min = order[level];
    this.#who = who;
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
    console.error(`[${time}] ${level.toUpperCase()} ${this.#who}: ${message}`);
  }
}
