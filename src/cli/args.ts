/**
 * What every command shares: its one-line failures with their exit codes, its flags, and the
 * server it acts on (`--pid-file F` or `--pid P`).
 * @module
 */

import { parseArgs } from "node:util";
import { runningServer } from "../operations/pid_file.ts";
import { isServer } from "./processes.ts";

/** The pid file the commands use when given none. */
export const defaultPidFile = "ziggurat.pid";

/** A failure with its one-line reason and exit code. */
export class Failure extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** A command's flags, as `parseArgs` takes them. */
export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; default?: string | boolean; multiple?: boolean }
>;

/** Parsed flags, loosely typed (each command checks its own); `--help` is every command's. */
export function flags(
  args: string[],
  options: FlagSpec,
  help: string,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { ...options, help: { type: "boolean", short: "h" } },
    });
    return {
      values: parsed.values as Record<string, string | boolean | string[] | undefined>,
      positionals: parsed.positionals,
    };
  } catch (error) {
    throw new Failure(`${(error as Error).message}\n\n${help}`, 2);
  }
}

/** `--name`'s value as an integer from `min` to `max`. */
export function integer(name: string, value: unknown, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Failure(`--${name} must be a number from ${min} to ${max}, got "${value}"`, 2);
  }
  return n;
}

/** The flags that say which server a command acts on. */
export const serverFlags: FlagSpec = {
  "pid-file": { type: "string", default: defaultPidFile },
  pid: { type: "string" },
};

/** The help lines of `serverFlags`. */
export const serverFlagsHelp = `  --pid-file F  The server's pid file (default ${defaultPidFile})
  --pid P       The server's master pid instead (as \`ziggurat list\` shows it)`;

/**
 * The master pid of the server the flags name: `--pid`, checked to be a Ziggurat server's, or
 * the pid file's. Only a process that holds the pid file open and locked counts
 * (operations/pid_file.ts): a stale file whose pid now names another program is never
 * signalled.
 */
export function serverPid(values: Record<string, unknown>): number {
  if (values.pid !== undefined) {
    const pid = integer("pid", values.pid, 1, 2 ** 31 - 1);
    if (!isServer(pid)) throw new Failure(`pid ${pid} is no running Ziggurat server's master`, 1);
    return pid;
  }
  const pidFile = values["pid-file"] as string;
  const found = runningServer(pidFile);
  switch (found) {
    case "missing":
      throw new Failure(`no pid file at ${pidFile} (is the server running?)`, 1);
    case "stale":
      throw new Failure(
        `${pidFile} is stale: no running Ziggurat server holds it (the pid it names is gone or is another program)`,
        1,
      );
    case "link":
      throw new Failure(`${pidFile} is a symbolic link; refusing to use it`, 1);
    case "unreadable":
      throw new Failure(`cannot read ${pidFile}`, 1);
    default:
      return found;
  }
}

/** Waits `ms` (the commands poll the process table: another process's exit has no event). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
