/**
 * `stats()` of the whole tree as a Prometheus text exposition (format 0.0.4): the tree's own
 * figures, one series per port (`port` label: its bound port) and one per worker (`worker`
 * label: its id; `type`: event, task or process), each family with its HELP and TYPE lines.
 * @module
 */

import type { ServerContext } from "../context.ts";
import { portStats, serverStats } from "../stats.ts";
import type { ServerStats } from "../stats.ts";
import type { PortStats } from "../port.ts";
import { WorkerStatus } from "../ipc/region.ts";

type Kind = "counter" | "gauge";
interface Family {
  name: string;
  kind: Kind;
  help: string;
  samples: { labels: Record<string, string>; value: number }[];
}

/** The tree's figures: field of `ServerStats`, metric name, kind, help. */
const treeFields: [keyof ServerStats, string, Kind, string][] = [
  ["startTime", "start_time_seconds", "gauge", "When the server started, in Unix seconds."],
  ["workerNum", "workers", "gauge", "Event workers."],
  ["idleWorkerNum", "idle_workers", "gauge", "Event workers not handling a batch now."],
  ["taskWorkerNum", "task_workers", "gauge", "Task workers."],
  ["taskIdleWorkerNum", "idle_task_workers", "gauge", "Task workers not running a task now."],
  ["userWorkerNum", "user_processes", "gauge", "User processes (addProcess)."],
  ["taskingNum", "tasks_in_hand", "gauge", "Tasks the task workers hold now."],
  ["taskCount", "tasks_total", "counter", "Tasks the task workers have taken."],
  ["concurrency", "busy_workers", "gauge", "Event workers handling a batch now."],
  ["sendQueuedBytes", "send_queued_bytes", "gauge", "Bytes queued for sessions, not yet written."],
  [
    "sendDroppedCount",
    "send_dropped_total",
    "counter",
    "Published messages a full output buffer did not take.",
  ],
  [
    "pipePacketMsgId",
    "mailbox_messages_total",
    "counter",
    "Messages sent between processes of the tree.",
  ],
  ["sessionRound", "last_session_id", "gauge", "The last session id handed out."],
];

/** Per port: field of `PortStats`, metric name, kind, help. */
const portFields: [keyof PortStats, string, Kind, string][] = [
  ["connectionNum", "connections", "gauge", "Sessions open now."],
  ["acceptCount", "accepted_total", "counter", "Connections accepted."],
  ["closeCount", "closed_total", "counter", "Sessions closed."],
  ["abortCount", "aborted_total", "counter", "Sessions that ended by an error or a reset."],
  ["refusedCount", "refused_total", "counter", "Connections refused at maxConnection."],
  ["dispatchCount", "dispatched_total", "counter", "Messages handed to workers."],
  ["totalRecvBytes", "received_bytes_total", "counter", "Bytes read from sessions."],
  ["totalSendBytes", "sent_bytes_total", "counter", "Bytes written to sessions."],
  [
    "protocolErrorCount",
    "protocol_errors_total",
    "counter",
    "Sessions closed for a malformed or oversize message.",
  ],
  ["heartbeatCloseCount", "heartbeat_closes_total", "counter", "Sessions the heartbeat closed."],
  ["httpRequestCount", "http_requests_total", "counter", "HTTP requests read."],
  ["httpStaticCount", "http_static_total", "counter", "HTTP requests the static handler answered."],
];

/** Per worker: field of `Region.counters`, metric name, kind, help. */
const workerFields: [string, string, Kind, string][] = [
  ["requestCount", "worker_requests_total", "counter", "Messages the worker received."],
  ["responseCount", "worker_responses_total", "counter", "Sends the worker made."],
  [
    "workerDispatchCount",
    "worker_records_total",
    "counter",
    "Records the worker took from its reactors.",
  ],
  [
    "callbackErrorCount",
    "worker_callback_errors_total",
    "counter",
    "Callbacks that threw or rejected.",
  ],
  ["discardCount", "worker_discarded_total", "counter", "Data of closed sessions dropped."],
];

const statusNames: Record<number, string> = {
  [WorkerStatus.notStarted]: "starting",
  [WorkerStatus.busy]: "busy",
  [WorkerStatus.idle]: "idle",
  [WorkerStatus.exited]: "exited",
};

/** The exposition of this server's tree, as of now. */
export function metricsText(ctx: ServerContext): string {
  const stats = serverStats(ctx);
  const families: Family[] = [];
  for (const [field, name, kind, help] of treeFields) {
    families.push({ name, kind, help, samples: [{ labels: {}, value: Number(stats[field]) }] });
  }
  const listeners = [ctx.port, ...ctx.ports.map((p) => p.port)];
  const ports = listeners.map((_, index) => portStats(ctx, index));
  for (const [field, name, kind, help] of portFields) {
    families.push({
      name,
      kind,
      help,
      samples: ports.map((p, i) => ({ labels: { port: String(listeners[i]) }, value: p[field] })),
    });
  }
  families.push({
    name: "http_responses_total",
    kind: "counter",
    help: "HTTP responses written, by status class.",
    samples: ports.flatMap((p, i) =>
      ([1, 2, 3, 4, 5] as const).map((c) => ({
        labels: { port: String(listeners[i]), class: `${c}xx` },
        value: p[`http${c}xxCount`],
      }))
    ),
  });
  const region = ctx.region;
  const workers = region
    ? Array.from({ length: region.endpointCount - 1 }, (_, id) => id)
    : [Math.max(0, ctx.workerId)];
  const typeOf = (id: number) =>
    !region || id < region.workerNum
      ? "event"
      : id < region.workerNum + region.taskWorkerNum
      ? "task"
      : "process";
  const counters = workers.map((id) =>
    region ? region.counters(id) : {
      requestCount: ctx.counters.request,
      responseCount: ctx.counters.response,
      workerDispatchCount: ctx.counters.dispatch,
      callbackErrorCount: ctx.counters.callbackErrors,
      discardCount: ctx.counters.discards,
    }
  );
  const labelsOf = (id: number) => ({ worker: String(id), type: typeOf(id) });
  for (const [field, name, kind, help] of workerFields) {
    families.push({
      name,
      kind,
      help,
      samples: workers.map((id, i) => ({ labels: labelsOf(id), value: counters[i][field] ?? 0 })),
    });
  }
  families.push({
    name: "worker_status",
    kind: "gauge",
    help: "1 for each worker's status now (starting, busy, idle, exited).",
    samples: workers.flatMap((id) => {
      const status = region ? region.status(id) : WorkerStatus.busy;
      return Object.entries(statusNames).map(([value, name]) => ({
        labels: { ...labelsOf(id), status: name },
        value: Number(value) === status ? 1 : 0,
      }));
    }),
  });
  return families.map(format).join("");
}

function format(family: Family): string {
  const name = `ziggurat_${family.name}`;
  const lines = [`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.kind}`];
  for (const { labels, value } of family.samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
    lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${number(value)}`);
  }
  return lines.join("\n") + "\n";
}

function escape(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function number(value: number): string {
  return Number.isFinite(value) ? String(value) : "NaN";
}
