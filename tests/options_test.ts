/**
 * Option validation, in one place and without a server: every integer, boolean and string
 * option refuses what is outside its range or type with an error that names it; the rules
 * between options; the values derived from others; and what the core is handed (its config
 * structs, written by field name).
 */
import assert from "node:assert/strict";
import { framingConfig, serverConfig } from "../src/_ffi/layout.ts";
import { resolveOptions } from "../src/options.ts";
import { nativeConfig, nativeFraming } from "../src/_ffi/native_options.ts";
import type { ServerOptions } from "../src/options.ts";

/** The error `resolveOptions(options)` throws: its class and a message naming `name`. */
function refuses(options: Record<string, unknown>, type: ErrorConstructor, name: string) {
  assert.throws(
    () => resolveOptions(options as ServerOptions),
    (e: Error) => e instanceof type && e.message.includes(`"${name}"`),
    `${Deno.inspect(options)} is refused with a ${type.name} naming "${name}"`,
  );
}

const integers: [string, number, number][] = [
  ["port", 0, 65535],
  ["packageLengthOffset", 0, 65535],
  ["packageBodyOffset", 0, 65535],
  ["packageMaxLength", 1, 2 ** 31],
  ["tcpDeferAccept", 0, 3600],
  ["tcpFastopen", 0, 65535],
  ["tcpKeepidle", 0, 32767],
  ["tcpKeepinterval", 0, 32767],
  ["tcpKeepcount", 0, 127],
  ["tcpUserTimeout", 0, 2 ** 31 - 1],
  ["kernelSocketRecvBufferSize", 0, 2 ** 31 - 1],
  ["kernelSocketSendBufferSize", 0, 2 ** 31 - 1],
  ["maxQueuedBytes", 0, 2 ** 30],
  ["taskMaxRequest", 0, 2 ** 31],
  ["startSessionId", 0, 2 ** 32 - 2],
  ["maxRequest", 0, 2 ** 31],
  ["maxRequestGrace", 0, 2 ** 31],
  ["reactorNum", 1, 256],
  ["backlog", 1, 65535],
  ["maxConnection", 1, 1_048_576],
  ["socketBufferSize", 1, 2 ** 31],
];

Deno.test("options: each integer option takes its bounds and refuses past them, and non-integers", () => {
  for (const [name, min, max] of integers) {
    assert.equal(resolveOptions({ [name]: min } as ServerOptions)[name as "port"], min, name);
    assert.equal(resolveOptions({ [name]: max } as ServerOptions)[name as "port"], max, name);
    refuses({ [name]: min - 1 }, RangeError, name);
    refuses({ [name]: max + 1 }, RangeError, name);
    refuses({ [name]: min + 0.5 }, TypeError, name);
    refuses({ [name]: String(min) }, TypeError, name);
  }
  // Powers of two from 256 KiB to 1 GiB.
  assert.equal(resolveOptions({ ringSize: 256 * 1024 }).ringSize, 256 * 1024);
  refuses({ ringSize: 128 * 1024 }, RangeError, "ringSize");
  refuses({ ringSize: 3 * 256 * 1024 }, RangeError, "ringSize");
});

Deno.test("options: booleans take only booleans, strings only strings", () => {
  const booleans = [
    "openEofCheck",
    "openEofSplit",
    "openLengthCheck",
    "enableDelayReceive",
    "openTcpKeepalive",
    "reloadAsync",
    "daemonize",
    "enableUnsafeEvent",
    "discardTimeoutRequest",
    "openTcpNodelay",
    "enableReusePort",
    "ipv6Only",
    "borrowedViews",
    "inlineReactor",
  ];
  for (const name of booleans) {
    refuses({ [name]: 1 }, TypeError, name);
    refuses({ [name]: "true" }, TypeError, name);
  }
  for (const name of ["pidFile", "logFile", "user", "group"]) {
    refuses({ [name]: 1 }, TypeError, name);
  }
  for (const name of ["host", "mode", "sockType", "logLevel"]) {
    assert.throws(() => resolveOptions({ [name]: 42 } as ServerOptions), new RegExp(`"${name}"`));
  }
});

Deno.test("options: the enumerations, seconds, and the process counts", () => {
  refuses({ mode: "thread" }, RangeError, "mode");
  refuses({ sockType: "sctp" }, RangeError, "sockType");
  refuses({ logLevel: "trace" }, RangeError, "logLevel");
  for (const mode of [1, 2, 3, 4, 5]) {
    assert.equal(resolveOptions({ dispatchMode: mode } as ServerOptions).dispatchMode, mode);
  }
  assert.throws(
    () => resolveOptions({ dispatchMode: 7 } as never),
    /"dispatchMode" 7 is not supported/,
  );
  refuses({ dispatchMode: 0 }, RangeError, "dispatchMode");
  refuses({ dispatchMode: 11 }, RangeError, "dispatchMode");
  for (const name of ["heartbeatCheckInterval", "heartbeatIdleTime", "maxIdleTime"]) {
    assert.equal(resolveOptions({ [name]: 0.25 } as ServerOptions)[name as "maxIdleTime"], 0.25);
    refuses({ [name]: -1 }, RangeError, name);
    refuses({ [name]: 86401 }, RangeError, name);
    refuses({ [name]: Number.NaN }, RangeError, name);
  }
  refuses({ maxWaitTime: 0 }, RangeError, "maxWaitTime");
  refuses({ maxWaitTime: 3601 }, RangeError, "maxWaitTime");
  assert.equal(resolveOptions({ maxWaitTime: 0.5 }).maxWaitTime, 0.5);
  const perCpu = 16 * navigator.hardwareConcurrency;
  assert.equal(resolveOptions({ workerNum: perCpu }).workerNum, perCpu);
  refuses({ workerNum: perCpu + 1 }, RangeError, "workerNum");
  refuses({ workerNum: 0 }, RangeError, "workerNum");
  refuses({ taskWorkerNum: -1 }, RangeError, "taskWorkerNum");
  refuses({ taskWorkerNum: perCpu + 1 }, RangeError, "taskWorkerNum");
});

Deno.test("options: the rules between options", () => {
  assert.throws(() => resolveOptions(null as never), /must be an object/);
  assert.throws(
    () => resolveOptions({ workerNumber: 2 } as never),
    /Unknown option "workerNumber"/,
  );
  // Framing: EOF and length framing exclude each other; the EOF marker is 1 to 8 bytes.
  assert.throws(
    () => resolveOptions({ openEofCheck: true, packageEof: "\n", openLengthCheck: true }),
    /exclude each other/,
  );
  refuses({ openEofSplit: true, packageEof: "" }, RangeError, "packageEof");
  refuses({ openEofSplit: true, packageEof: "123456789" }, RangeError, "packageEof");
  assert.equal(resolveOptions({ openEofSplit: true, packageEof: "\r\n" }).packageEof, "\r\n");
  refuses({ packageLengthType: "x" }, RangeError, "packageLengthType");
  refuses({ packageLengthFunc: "f" }, TypeError, "packageLengthFunc");
  assert.equal(resolveOptions({ packageLengthFunc: () => 0 }).openLengthCheck, true);
  refuses({ bufferHighWatermark: 100, bufferLowWatermark: 101 }, RangeError, "bufferLowWatermark");
  // Unix sockets: a path, at most 107 bytes, no reuse port, no port.
  refuses({ sockType: "unix", host: "relative" }, TypeError, "host");
  refuses({ sockType: "unix", host: "/" + "x".repeat(107) }, RangeError, "host");
  refuses(
    { sockType: "unix", host: "/tmp/s", enableReusePort: true },
    TypeError,
    "enableReusePort",
  );
  assert.equal(resolveOptions({ sockType: "unix", host: "/tmp/s", port: 9 }).port, 0);
  refuses({ host: "" }, TypeError, "host");
});

Deno.test("options: values derived from others (Swoole's rules)", () => {
  assert.equal(resolveOptions({ host: "localhost" }).host, "127.0.0.1");
  // An idle time alone checks every half of it; an interval alone idles twice it.
  assert.equal(resolveOptions({ heartbeatIdleTime: 4 }).heartbeatCheckInterval, 2);
  assert.equal(resolveOptions({ heartbeatCheckInterval: 3 }).heartbeatIdleTime, 6);
  // maxIdleTime is a heartbeat of its own idle time, checked at least every second.
  const idle = resolveOptions({ maxIdleTime: 5 });
  assert.equal(idle.heartbeatIdleTime, 5);
  assert.equal(idle.heartbeatCheckInterval, 1);
  // A grace only above 10 requests, half of them by default.
  assert.equal(resolveOptions({ maxRequest: 10 }).maxRequestGrace, 0);
  assert.equal(resolveOptions({ maxRequest: 30 }).maxRequestGrace, 15);
  // Reactor threads: one per worker, at most the CPUs and 8.
  const cpus = navigator.hardwareConcurrency;
  assert.equal(resolveOptions({ workerNum: 1 }).reactorNum, 1);
  assert.equal(resolveOptions({ workerNum: 32 }).reactorNum, Math.min(cpus, 8));
  // undefined means the default, as if it were not given.
  assert.equal(resolveOptions({ port: undefined }).port, resolveOptions({}).port);
});

Deno.test("options: the core's configs are written by field name", () => {
  const o = resolveOptions({
    maxConnection: 123,
    socketBufferSize: 4567,
    ringSize: 512 * 1024,
    maxWaitTime: 1.5,
    logLevel: "warning",
    dispatchMode: 3,
    startSessionId: 99,
  });
  const config = nativeConfig(o, 2, 4);
  const at = (field: keyof typeof serverConfig) => config[serverConfig[field] / 4];
  assert.equal(at("maxConnection"), 123);
  assert.equal(at("socketBufferSize"), 4567);
  assert.equal(at("ringBytes"), 512 * 1024);
  assert.equal(at("maxWaitTimeMs"), 1500);
  assert.equal(at("reactorId"), 2);
  assert.equal(at("logLevel"), 2);
  assert.equal(at("sessionStride"), 4);
  assert.equal(at("dispatch") & 0xff, 3);
  assert.equal(at("startSessionId"), 99);
  const framing = resolveOptions({
    openLengthCheck: true,
    packageLengthType: "N",
    packageLengthOffset: 2,
    packageBodyOffset: 6,
    packageMaxLength: 1000,
    bufferHighWatermark: 900,
    bufferLowWatermark: 100,
  });
  const bytes = nativeFraming(framing);
  const u32 = new Uint32Array(bytes.buffer);
  const get = (field: keyof typeof framingConfig) => u32[framingConfig[field] / 4];
  assert.equal(get("kind"), 3, "length framing");
  assert.equal(get("lengthType"), "N".charCodeAt(0));
  assert.equal(get("lengthOffset"), 2);
  assert.equal(get("bodyOffset"), 6);
  assert.equal(get("maxLength"), 1000);
  assert.equal(get("highWatermark"), 900);
  assert.equal(get("lowWatermark"), 100);
  const eof = nativeFraming(resolveOptions({ openEofSplit: true, packageEof: "\r\n" }));
  assert.equal(new Uint32Array(eof.buffer)[framingConfig.kind / 4], 1, "EOF split");
  assert.equal(new Uint32Array(eof.buffer)[framingConfig.markerLen / 4], 2);
  assert.deepEqual([...eof.subarray(framingConfig.marker, framingConfig.marker + 2)], [13, 10]);
});
