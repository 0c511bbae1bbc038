/**
 * What a server does to the machine it runs on, around its sockets: the checks before it
 * listens (users and groups), the background server (`daemonize`), the log file and the pid
 * file, the word "listening" to a launcher, and the files it removes when it stops.
 * @module
 */

import { notify, takeSupervisorEnv } from "./systemd.ts";
import { library } from "../_ffi/library.ts";
import type { ServerContext } from "../context.ts";
import { isUnix } from "../options.ts";
import type { SockType } from "../options.ts";
import { env } from "../roles/role.ts";
import { startInBackground } from "./daemon.ts";
import { openLogFile } from "./log_file.ts";
import { PidFile } from "./pid_file.ts";
import { checkIds } from "./privileges.ts";

const encoder = new TextEncoder();

export class Operations {
  #ctx: ServerContext;
  /** Daemon mode: the fd to tell the launcher on (in the background server), or -1. */
  #readyFd = -1;
  /** This process is a background server (`daemonize`). */
  #daemonized = false;
  /** The pid file this process holds while it runs (the master's). */
  #pidFile: PidFile | undefined;
  /** The files of the Unix sockets this server bound. */
  #socketFiles: string[] = [];
  /** After `start()` with `daemonize`, in the launching process: the background server's pid. */
  daemonPid = -1;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /**
   * Before anything listens: the users and groups exist, the log file opens, the pid file is
   * this server's (a running server's, a symbolic link or a directory we cannot write throws).
   * Returns true when this process is to launch the background server instead (`daemonize`).
   */
  prepare(): boolean {
    const { options: o, role } = this.#ctx;
    const first = role.kind !== "worker";
    if (first) takeSupervisorEnv();
    if (first) checkIds(o.user, o.group);
    if (o.daemonize && first) {
      const ready = Deno.env.get(env.daemonReadyFd);
      if (ready === undefined) return true;
      // This is the background server: it tells its launcher once it listens.
      Deno.env.delete(env.daemonReadyFd);
      this.#readyFd = Number(ready);
      this.#daemonized = true;
      library().zg_set_cloexec(this.#readyFd);
    }
    this.openLog();
    if (first && o.pidFile) this.#pidFile = PidFile.acquire(o.pidFile);
    return false;
  }

  /**
   * `daemonize`: starts this program again in the background (a new session, detached; stdout
   * and stderr to `logFile` or nowhere) and resolves once that server listens; this process is
   * then free to exit. Rejects when it exits before it listens.
   */
  async daemonize(): Promise<void> {
    const ctx = this.#ctx;
    ctx.lib = library();
    const { port, pid } = await startInBackground(ctx.options);
    ctx.port = port;
    this.daemonPid = pid;
    ctx.state = "stopped";
  }

  /**
   * `logFile`: stderr (and so every log line, the core's too) goes to the file from now on. Each
   * process opens it by path, so after a rotation renamed it, SIGRTMIN makes a new one.
   */
  openLog() {
    const { options: o, role } = this.#ctx;
    if (!o.logFile) return;
    // A background server's stdout goes to the log too (its launcher pointed it there). The
    // master (root) makes the file for workers that give up root.
    const chown = role.kind === "manager" && (o.user || o.group);
    openLogFile(o.logFile, this.#readyFd >= 0 || this.#daemonized, chown ? o : undefined);
  }

  /** SIGRTMIN: the log file again, by its path (a rotation renamed the old one). */
  reopenLog() {
    try {
      this.openLog();
      this.#ctx.log.info("log file reopened");
    } catch (error) {
      this.#ctx.log.error("cannot reopen the log file", error);
    }
  }

  /**
   * The server listens (in the process that called `start()`): `onListen` runs, a `signal`
   * that aborted already stops it, and a background server tells its launcher.
   */
  listening() {
    const { options: o, server, log } = this.#ctx;
    if (o.onListen) {
      try {
        o.onListen(server.addr);
      } catch (error) {
        log.error("the onListen callback threw; the server carries on", error);
      }
    }
    if (o.signal?.aborted) server.shutdown();
    this.#tellSupervisor("READY=1");
    if (this.#readyFd < 0) return;
    const lib = library();
    const line = encoder.encode(`listening ${this.#ctx.port}\n`);
    lib.zg_write_all(this.#readyFd, line, BigInt(line.length));
    lib.zg_close_fd(this.#readyFd);
    this.#readyFd = -1;
  }

  /** The server begins to stop (in the process that was started): a supervisor hears so. */
  stopping() {
    this.#tellSupervisor("STOPPING=1");
  }

  #tellSupervisor(state: string) {
    try {
      notify(state);
    } catch (error) {
      this.#ctx.log.warning(`cannot tell the supervisor ${state}: ${(error as Error).message}`);
    }
  }

  /** The pid file goes with the server (if it is still the one this server wrote). */
  releasePidFile() {
    this.#pidFile?.release();
    this.#pidFile = undefined;
  }

  /** This server bound Unix sockets at these paths: their files go with it. */
  madeSocketFiles(listeners: readonly { sockType: SockType; host: string }[]) {
    for (const { sockType, host } of listeners) if (isUnix(sockType)) this.#socketFiles.push(host);
  }

  /**
   * The server stopped: the pid file goes, and so do the files of the Unix sockets it bound
   * (not another server's, at a path that was in use).
   */
  release() {
    this.releasePidFile();
    for (const path of this.#socketFiles) {
      try {
        if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
      } catch {
        // Gone already.
      }
    }
    this.#socketFiles = [];
  }
}
