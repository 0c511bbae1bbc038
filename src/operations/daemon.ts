/**
 * `daemonize`: the server starts again in the background, detached in a new session, with its
 * stdout and stderr going to `logFile` (or nowhere), and tells its launcher on a pipe once it
 * listens.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import type { ResolvedOptions } from "../options.ts";
import { runningServer } from "./pid_file.ts";
import { env, ownCommandLine, packArgv, packEnv } from "../roles/role.ts";

const encoder = new TextEncoder();

/**
 * Starts this program again in the background and resolves with the port it listens on and
 * its pid. Rejects when the pid file belongs to a running server, or when the background
 * server exits before it listens.
 */
export async function startInBackground(
  options: ResolvedOptions,
): Promise<{ port: number; pid: number }> {
  const lib = library();
  const { pidFile, logFile } = options;
  const running = pidFile ? runningServer(pidFile) : "missing";
  if (typeof running === "number") {
    throw new Deno.errors.AlreadyExists(
      `Cannot start the server: the pid file "${pidFile}" belongs to a running server (pid ${running})`,
    );
  }
  const argv = ownCommandLine();
  const pipe = new Int32Array(2);
  unwrap(lib.zg_pipe(pipe), "create a pipe");
  const vars: Record<string, string> = { ...Deno.env.toObject(), [env.daemonReadyFd]: "3" };
  const argvBytes = packArgv(argv);
  const envBytes = packEnv(vars);
  const output = encoder.encode(logFile);
  const pid = new Int32Array(1);
  try {
    unwrap(
      lib.zg_spawn_detached(
        argvBytes,
        BigInt(argvBytes.length),
        envBytes,
        BigInt(envBytes.length),
        output,
        BigInt(output.length),
        pipe[1],
        pid,
      ),
      "start the server in the background",
    );
  } finally {
    lib.zg_close_fd(pipe[1]);
  }
  const buffer = new Uint8Array(256);
  let text = "";
  while (!text.includes("\n")) {
    const n = Number(await lib.zg_read(pipe[0], buffer, BigInt(buffer.length)));
    if (n <= 0) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  lib.zg_close_fd(pipe[0]);
  const match = /^listening (\d+)/.exec(text);
  if (!match) {
    const where = logFile ? `; see ${logFile}` : "";
    throw new Error(
      `the server started in the background (pid ${pid[0]}) exited before it listened${where}`,
    );
  }
  return { port: Number(match[1]), pid: pid[0] };
}
