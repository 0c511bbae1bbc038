/**
 * The TypeScript mirror of core/src/abi.zig: statuses, record types and the byte offsets of
 * every struct both sides read. tests/layout_test.ts checks each number against `zg_layout`.
 * @module
 */

/** `abi.Status`: what every exported function returns. */
export const Status = {
  ok: 0,
  invalidArgument: 1,
  addrInUse: 2,
  addrNotAvailable: 3,
  permissionDenied: 4,
  outOfMemory: 5,
  limitReached: 6,
  badState: 7,
  notFound: 8,
  osError: 9,
} as const;

/** `abi.RecordType`. */
export const RecordType = {
  pad: 0,
  connect: 1,
  receive: 2,
  close: 3,
  shutdown: 4,
  stopped: 5,
  send: 16,
  closeRequest: 17,
  shutdownAck: 18,
  pauseRequest: 19,
  sendfileRequest: 20,
  drainRequest: 21,
  drained: 15,
  packet: 24,
  sendto: 25,
  task: 6,
  finish: 7,
  pipeMessage: 8,
  forwardSend: 9,
  forwardClose: 10,
  taskLost: 11,
  control: 12,
  bufferFull: 13,
  bufferEmpty: 14,
  subscribe: 22,
  unsubscribe: 23,
  publish: 26,
  forwardSubscribe: 27,
  forwardUnsubscribe: 28,
  forwardPublish: 29,
  websocketTimers: 30,
  websocketDeflate: 31,
  websocketFail: 32,
} as const;

/** Flags of publish records (`abi.publish_flag_*`). */
export const PublishFlag = { more: 1, first: 2 } as const;

/** Flags of receive records (`abi.receive_flag_*`). */
export const ReceiveFlag = { more: 1, continued: 2 } as const;

/** Flags of mailbox records (`abi.mail_flag_*`). */
export const MailFlag = { more: 1, error: 2, noResult: 4, first: 8, last: 16 } as const;

/** `abi.dispatch_unsafe_event`: added to the dispatch mode in `ServerConfig.dispatch`. */
export const dispatchUnsafeEvent = 0x100;

/** `reactor.poll_*`: what `zg_server_poll` returns. */
export const PollFlag = { more: 1 } as const;

export const CloseFlag = { peerEof: 1, server: 2, error: 4 } as const;
/** A `close_request` record's aux: how to close. */
export const CloseHow = { graceful: 0, reset: 1, protocolError: 2 } as const;

export const ListenFlag = {
  ipv6Only: 1,
  reusePort: 2,
  tcpNodelay: 4,
  bindOnly: 8,
  unix: 16,
  udp: 32,
} as const;

/** Session states from `zg_session_state`. */
export const SessionState = {
  gone: 0,
  open: 1,
  peerClosed: 2,
  closing: 3,
  overLimit: 0x100,
} as const;

/** Byte offsets and sizes, in the order `zg_layout` writes them. */
export const layout = {
  recordHeaderSize: 16,
  recordLen: 0,
  recordType: 4,
  recordFlags: 5,
  recordReactorId: 6,
  recordSessionId: 8,
  recordAux: 12,
  ringControlSize: 128,
  ringTail: 0,
  ringProducerWaiting: 4,
  ringHead: 64,
  ringConsumerParked: 68,
  channelHeaderSize: 1608,
  channelRingBytes: 4,
  channelInCtl: 8,
  channelOutCtl: 136,
  channelStats: 264,
  dataOffset: 4096,
  statsSize: 1256,
  clientInfoSize: 136,
  clientInfoRemoteAddr: 32,
  clientInfoConnectTime: 48,
  clientInfoSendQueuedBytes: 80,
  serverConfigSize: 36,
  recordAlign: 16,
  childExitSize: 16,
  regionHeaderSize: 128,
  regionSlotsOffset: 128,
  workerSlotSize: 3360,
  workerSlotRequestCount: 8,
  workerSlotStats: 40,
  ringConsumerClaim: 72,
  regionReactorNum: 12,
  regionReactorStatsOffset: 40,
  regionChannelsOffset: 48,
  regionChannelStride: 56,
  regionShapeSize: 32,
  regionTaskWorkerNum: 80,
  regionMailOffset: 96,
  regionMailStride: 104,
  workerSlotRunning: 1296,
  runningMax: 256,
  workerSlotTasking: 3344,
  workerSlotTaskSeq: 3348,
  regionMailCount: 92,
  framingConfigSize: 132,
  packetAddressSize: 24,
  statsPorts: 168,
  portStatsSize: 136,
  clientInfoRecvQueuedBytes: 112,
  clientInfoListener: 120,
  clientInfoProtected: 124,
  workerSlotDiscardCount: 3352,
  channelPublished: 1520,
  regionRotation: 126,
} as const;

/**
 * Fields by name: byte offsets into the structs TypeScript writes or reads field by field
 * (`abi.describe` lists the core's; tests/layout_test.ts compares every one of them).
 */
export const serverConfig = {
  maxConnection: 0,
  socketBufferSize: 4,
  ringBytes: 8,
  maxWaitTimeMs: 12,
  reactorId: 16,
  logLevel: 20,
  sessionStride: 24,
  dispatch: 28,
  startSessionId: 32,
} as const;

export const framingConfig = {
  kind: 0,
  markerLen: 4,
  marker: 8,
  lengthType: 16,
  lengthOffset: 20,
  bodyOffset: 24,
  maxLength: 28,
  highWatermark: 32,
  lowWatermark: 36,
  delayReceive: 40,
  keepalive: 44,
  keepIdle: 48,
  keepInterval: 52,
  keepCount: 56,
  userTimeoutMs: 60,
  recvBuffer: 64,
  sendBuffer: 68,
  maxQueuedBytes: 72,
  heartbeatIdleMs: 76,
  httpMaxHead: 80,
  httpMaxHeaders: 84,
  httpMaxTarget: 88,
  httpHeaderTimeoutMs: 92,
  httpKeepaliveMs: 96,
  httpMinBodyRate: 100,
  httpMaxPipelined: 104,
  notsentLowat: 108,
  websocket: 112,
  websocketMaxMessage: 116,
  websocketPingMs: 120,
  websocketIdleMs: 124,
  proxyProtocol: 128,
} as const;

/** `abi.HttpRequest`: what starts an HTTP request message (then the header table, the raw head, the body). */
export const httpRequest = {
  headLen: 0,
  bodyLen: 4,
  headerCount: 8,
  methodOff: 10,
  methodLen: 12,
  targetOff: 14,
  targetLen: 16,
  minorVersion: 18,
  flags: 19,
  reserved: 20,
} as const;
export const httpRequestSize = 24;

/** `abi.HttpHeader`: one header field's name and value, as offsets into the raw head. */
export const httpHeader = { nameOff: 0, nameLen: 2, valueOff: 4, valueLen: 6 } as const;
export const httpHeaderSize = 8;

/** `HttpRequest.flags` (http.zig `flag_*`). */
export const HttpFlag = { keepAlive: 1, chunked: 2, expectContinue: 4, upgrade: 8 } as const;

/** Flags of `send` records (`abi.send_flag_*`). */
export const SendFlag = { responseEnd: 1, responsePart: 2, wsMore: 4, wsControl: 8 } as const;

/**
 * A `forward_send` mail record's aux for a part of a detached HTTP response (src/http/
 * detached.ts): `part`, `last` and `close` bits, the status in the low 16 bits.
 */
export const ForwardHttp = { part: 0x8000_0000, last: 0x4000_0000, close: 0x2000_0000 } as const;
/**
 * A `forward_send` record's aux otherwise: the unit its bytes are cut in (`Sessions.send`), and
 * whether a WebSocket message goes on after them (`SendFlag.wsMore`).
 */
export const ForwardSend = { unit: 0x3fff_ffff, wsMore: 0x4000_0000 } as const;

/** What `zg_session_websocket` returns: the `WebSocketStatus`, and whether permessage-deflate is on. */
export const WebSocketState = { status: 0xff, deflate: 0x100 } as const;

export const clientInfo = {
  sessionId: 0,
  fd: 4,
  reactorId: 8,
  serverFd: 12,
  serverPort: 16,
  remotePort: 20,
  family: 24,
  closeErrno: 28,
  remoteAddr: 32,
  connectTime: 48,
  lastRecvTime: 56,
  lastSendTime: 64,
  lastDispatchTime: 72,
  sendQueuedBytes: 80,
  totalRecvBytes: 88,
  totalSendBytes: 96,
  uid: 104,
  workerId: 108,
  recvQueuedBytes: 112,
  listener: 120,
  protected: 124,
  websocketStatus: 128,
} as const;

export const workerSlot = {
  pid: 0,
  status: 4,
  requestCount: 8,
  responseCount: 16,
  dispatchCount: 24,
  callbackErrorCount: 32,
  stats: 40,
  running: 1296,
  tasking: 3344,
  taskSeq: 3348,
  discardCount: 3352,
} as const;

/** `abi.Published`: a one-worker server's JavaScript counters in its channel (f64 each). */
export const published = {
  requestCount: 0,
  responseCount: 8,
  dispatchCount: 16,
  callbackErrorCount: 24,
  discardCount: 32,
  http: 40,
  busy: 80,
} as const;

/** `abi.Stats` fields in declaration order (each a u64). */
export const statsFields = [
  "startTime",
  "connectionNum",
  "acceptCount",
  "closeCount",
  "abortCount",
  "refusedCount",
  "dispatchCount",
  "totalRecvBytes",
  "totalSendBytes",
  "sessionRound",
  "sendQueuedBytes",
  "sendDroppedCount",
  "protocolErrorCount",
  "heartbeatCloseCount",
  "httpRequestCount",
  "httpStaticCount",
  "http1xxCount",
  "http2xxCount",
  "http3xxCount",
  "http4xxCount",
  "http5xxCount",
] as const;

/** `abi.PortStats` fields in declaration order (each a u64): one listening socket's counters. */
export const portStatsFields = [
  "connectionNum",
  "acceptCount",
  "closeCount",
  "abortCount",
  "refusedCount",
  "dispatchCount",
  "totalRecvBytes",
  "totalSendBytes",
  "protocolErrorCount",
  "heartbeatCloseCount",
  "httpRequestCount",
  "httpStaticCount",
  "http1xxCount",
  "http2xxCount",
  "http3xxCount",
  "http4xxCount",
  "http5xxCount",
] as const;

/** `abi.ports_max`: a server's listening sockets, its own included. */
export const portsMax = 8;
