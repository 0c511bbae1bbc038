/**
 * What the benchmarks share: starting a server pinned to the server CPU and waiting for its
 * `listening` line, the CPU time of its whole process tree from /proc, and stopping it (and any
 * descendant) for sure.
 * @module
 */

export const root = new URL("..", import.meta.url).pathname;
export const host = "127.0.0.1";
export const serverCpu = "0";
export const loadCpu = "1";
/** How long a server may take to print its `listening` line (a first `scripts/bun` installs Bun). */
const startTimeoutMs = 60_000;
/** How long a server may take to exit after SIGTERM before it is killed. */
const stopTimeoutMs = 5_000;

export interface ServerSpec {
  name: string;
  /** The command, before `--host`/`--port` are appended; run from the repository root. */
  command: string[];
}

// --- small helpers ------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function run(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, cwd: root, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** Calls `onLine` for each line of `stream` until it ends. */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
) {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  }
  if (pending) onLine(pending);
}

// --- /proc --------------------------------------------------------------------------------

export const clockTicks = Number(await run("getconf", ["CLK_TCK"]));

/** Fields of /proc/<pid>/stat, numbered as in proc(5) (field 1 is the pid), or null if gone. */
export function procStat(pid: number): string[] | null {
  let text;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // Field 2, the command name, is parenthesised and may contain spaces: split after it.
  const rest = text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
  return ["", String(pid), "(comm)", ...rest];
}

/** `pid` and all its live descendants (each process once, its threads included in its stat). */
export function processTree(pid: number): number[] {
  const found = [pid];
  for (let i = 0; i < found.length; i++) {
    let tasks;
    try {
      tasks = [...Deno.readDirSync(`/proc/${found[i]}/task`)];
    } catch {
      continue; // exited meanwhile
    }
    for (const task of tasks) {
      try {
        const children = Deno.readTextFileSync(`/proc/${found[i]}/task/${task.name}/children`);
        for (const child of children.split(" ").filter(Boolean)) found.push(Number(child));
      } catch {
        // The thread exited meanwhile.
      }
    }
  }
  return found;
}

/** User and system CPU seconds of the process tree: all threads, plus reaped children. */
export function treeCpu(pids: number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const f = procStat(pid);
    if (!f) continue;
    // 14 utime and 15 stime cover all threads; 16 cutime and 17 cstime hold children that
    // exited and were waited for, so a helper process ending mid-window is not lost.
    user += Number(f[14]) + Number(f[16]);
    system += Number(f[15]) + Number(f[17]);
  }
  return { user: user / clockTicks, system: system / clockTicks };
}

/**
 * Machine-wide CPU seconds from /proc/stat: `busy` is all non-idle time over all CPUs,
 * `softirq` the softirq time of the server's CPU. (With tick-based accounting, as here, a tick
 * spent in a softirq counts both as softirq here and as system time of the interrupted task.)
 */
export function machineCpu(): { busy: number; softirq: number } {
  const lines = Deno.readTextFileSync("/proc/stat").split("\n");
  const values = (name: string) =>
    lines.find((l) => l.startsWith(`${name} `))?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  // user nice system idle iowait irq softirq steal ...
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = values("cpu");
  const busy = user + nice + system + irq + softirq;
  return { busy: busy / clockTicks, softirq: (values(`cpu${serverCpu}`)[6] ?? 0) / clockTicks };
}

/** Identity of a process, so a recycled pid is never signalled. */
export function startTime(pid: number): string | undefined {
  return procStat(pid)?.[22];
}

// --- servers ------------------------------------------------------------------------------

/** Every process this script started and has not yet seen exit, for cleanup on Ctrl-C. */
export const live = new Set<ServerProcess>();

export class ServerProcess {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  readonly stderrTail: string[] = [];
  readonly port: Promise<number>;
  /** Set once the process has exited. */
  exited: Deno.CommandStatus | null = null;
  #known = new Map<number, string | undefined>();

  constructor(readonly spec: ServerSpec) {
    const [command, ...args] = [
      "taskset",
      "-c",
      serverCpu,
      ...spec.command,
      "--host",
      host,
      "--port",
      "0",
    ];
    this.child = new Deno.Command(command, {
      args,
      cwd: root,
      env: { NO_COLOR: "1" }, // plain stderr for the skip/failure reasons
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.child.pid;
    live.add(this);
    this.child.status.then((status) => {
      this.exited = status;
      live.delete(this);
    });

    // Both pipes are drained for the server's whole life: a full pipe would stall it.
    let onListening: (port: number) => void;
    const listening = new Promise<number>((resolve) => onListening = resolve);
    const stdoutDone = readLines(this.child.stdout, (line) => {
      const match = /^listening \S+:(\d+)\s*$/.exec(line);
      if (match) onListening(Number(match[1]));
    }).catch(() => {});
    readLines(this.child.stderr, (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
    }).catch(() => {});
    this.port = Promise.race([
      listening,
      stdoutDone.then(() => this.child.status).then((status) => {
        throw new Error(`exited with code ${status.code} before listening${this.#lastError()}`);
      }),
      sleep(startTimeoutMs).then(() => {
        throw new Error(`no 'listening' line within ${startTimeoutMs / 1000} s`);
      }),
    ]);
  }

  /** The process tree now; remembered so that stop() can reach descendants. */
  tree(): number[] {
    const pids = processTree(this.pid);
    for (const pid of pids) if (!this.#known.has(pid)) this.#known.set(pid, startTime(pid));
    return pids;
  }

  /** Why the server is gone, if it is: its exit status and last stderr lines. */
  async death(): Promise<string | null> {
    await Promise.race([this.child.status, sleep(500)]);
    if (!this.exited) return null;
    const how = this.exited.signal ? `signal ${this.exited.signal}` : `code ${this.exited.code}`;
    return `server exited (${how})${this.#lastError()}`;
  }

  /** The most telling recent stderr line: the last that looks like an error, else the last. */
  #lastError(): string {
    const lines = this.stderrTail.map((l) => l.trim()).filter(Boolean);
    const last = lines.findLast((l) => /error|panic|fatal/i.test(l)) ?? lines.at(-1);
    return last ? `: ${last}` : "";
  }

  /** SIGTERM, then SIGKILL to the whole tree if it has not exited in time. */
  async stop(): Promise<void> {
    this.tree();
    if (!this.exited) {
      try {
        this.child.kill("SIGTERM");
      } catch {
        // Exited just now.
      }
      const exited = await Promise.race([this.child.status.then(() => true), sleep(stopTimeoutMs)]);
      if (!exited) {
        console.error(
          `  ${this.spec.name} ignored SIGTERM for ${stopTimeoutMs / 1000} s: killing it`,
        );
        this.#killTree();
        await this.child.status;
      }
    }
    // Descendants that outlived their parent (none expected) go too.
    this.#killTree();
  }

  #killTree(): void {
    for (const [pid, started] of this.#known) {
      if (started !== undefined && startTime(pid) === started) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
    }
  }
}

Deno.addSignalListener("SIGINT", async () => {
  console.error("\ninterrupted: stopping servers");
  await Promise.all([...live].map((s) => s.stop()));
  Deno.exit(130);
});
