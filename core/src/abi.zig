//! Everything that crosses the FFI boundary or a process boundary: the status enum, the ring
//! record header, the shared control blocks and the structs TypeScript reads. TypeScript mirrors
//! these in src/_ffi/layout.ts; tests/layout_test.ts checks that mirror against `zg_layout`.
const std = @import("std");
const assert = std.debug.assert;

/// The one status every exported function returns. Numbers are stable: TypeScript maps them to
/// errors in src/_ffi/library.ts. OS errors carry errno separately (`zg_last_errno`).
pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = 1,
    addr_in_use = 2,
    addr_not_available = 3,
    permission_denied = 4,
    out_of_memory = 5,
    limit_reached = 6,
    bad_state = 7,
    not_found = 8,
    os_error = 9,
};

/// Record types. Reactor → worker records are below 16, worker → reactor records from 16 up.
pub const RecordType = enum(u8) {
    /// Filler at the end of the ring data area; the consumer skips to offset 0.
    pad = 0,
    /// A session was accepted. aux = listener index. Payload: none.
    connect = 1,
    /// Bytes read from a session. Payload: the bytes.
    receive = 2,
    /// A session ended. flags: `close_flag_*`. aux = errno of the failure, or 0.
    close = 3,
    /// The reactor stopped accepting and reading; everything before this record was delivered.
    shutdown = 4,
    /// The reactor thread has closed every session and is exiting; nothing follows.
    stopped = 5,
    /// Mailbox records (between processes of the tree). Payloads of more than one record are
    /// sent in chunks: `mail_flag_more` on all but the last.
    /// A task for a task worker. session_id = task id (the sender's); aux = task flags.
    task = 6,
    /// A task's result for the worker that sent it. session_id = task id; `mail_flag_error`
    /// when the payload is an error.
    finish = 7,
    /// `sendMessage`: payload = the message.
    pipe_message = 8,
    /// Send to a session of the receiving event worker, for another process. session_id = the
    /// session; payload = the bytes; aux = 0, or (bit 31) a part of a detached HTTP response:
    /// bit 30 its last, bit 29 the connection ends with it, the low 16 bits its status.
    forward_send = 9,
    /// Close a session of the receiving event worker. aux = 1 for reset.
    forward_close = 10,
    /// The master to a task's sender: the task worker died while it ran this task.
    task_lost = 11,
    /// A worker to the master: aux 1 shut down, 2 reload, 3 reload the task workers (a worker
    /// that gave up root cannot signal the master).
    control = 12,
    /// A session's queued output reached `buffer_high_watermark`.
    buffer_full = 13,
    /// …and went down to `buffer_low_watermark` again.
    buffer_empty = 14,
    /// The answer to `drain_request`: the session's output is written (aux 1), or the session
    /// ended first (aux 0).
    drained = 15,
    /// A UDP datagram. aux = the listener index. Payload: `PacketAddress`, then the datagram.
    packet = 24,
    /// Send a datagram from listener `aux`. Payload: `PacketAddress`, then the datagram.
    sendto = 25,
    /// Queue the payload for a session.
    send = 16,
    /// Close a session. aux = 1 for reset (RST, drop queued output), 0 for graceful, 2 for a
    /// protocol error found by the worker (reset, logged by it, counted by the reactor).
    close_request = 17,
    /// The worker saw `shutdown` and has queued everything it will send.
    shutdown_ack = 18,
    /// Stop (aux 1) or go on (aux 0) reading a session: `pause` / `resume` / `confirm`.
    pause_request = 19,
    /// `sendfile`: payload = u64 offset, u64 length (0: to the end), the file's path.
    sendfile_request = 20,
    /// `sendwait`: answer with `drained` once everything queued for the session is written.
    drain_request = 21,
    /// Publish/subscribe (pubsub.zig). Subscribe session_id to the topic in the payload; aux
    /// bit 0: the sender counted it in the region's topic counts.
    subscribe = 22,
    unsubscribe = 23,
    /// Write a frame to every subscriber of a topic. Payload: u16 topic length, the topic, the
    /// frame; `publish_flag_more` on all records of one but the last (those carry frame bytes).
    publish = 26,
    /// Mailbox records: `subscribe` / `unsubscribe` / `publish` for the receiving event worker
    /// to queue on its lanes (a process without a lane to the session's reactor sent it).
    forward_subscribe = 27,
    forward_unsubscribe = 28,
    forward_publish = 29,
    /// A WebSocket's own idle timeout (outbound): aux = ms (0: none); it is pinged after half.
    websocket_timers = 30,
    /// The worker's 101 that follows takes the client's permessage-deflate offer (outbound).
    websocket_deflate = 31,
    /// The worker refused a message of the session (a compressed one that does not inflate,
    /// or is too long once inflated): aux = the close code, payload = the reason. The core
    /// closes with it, reads nothing more, and counts a protocol error.
    websocket_fail = 32,
};

pub const publish_flag_more: u8 = 1;
/// The first record of every publish (an unfinished one before it on the lane is dropped).
pub const publish_flag_first: u8 = 2;

pub const mail_flag_more: u8 = 1;
pub const mail_flag_error: u8 = 2;
/// A task's handler gave no result: the sender only forgets the task.
pub const mail_flag_no_result: u8 = 4;
/// The first chunk of a message in several records (it also has `mail_flag_more`).
pub const mail_flag_first: u8 = 8;
/// The last chunk of a message in several records.
pub const mail_flag_last: u8 = 16;

/// The peer closed its side (EOF). The socket stays open, so output queued before the worker
/// answers is still delivered, until the worker answers with `close_request`.
pub const close_flag_peer_eof: u8 = 1;
/// The server closed the session (close() or shutdown): reactor id -1 in the callback.
pub const close_flag_server: u8 = 2;
/// The connection failed (reset by peer, write error); aux holds errno.
pub const close_flag_error: u8 = 4;

/// Every ring record starts with this header; the payload follows and the next record starts at
/// the next multiple of `record_align`. Written only by the producer, before it publishes tail.
pub const RecordHeader = extern struct {
    /// Payload bytes after the header. A `pad` record's len covers the rest of the data area.
    len: u32,
    /// A `RecordType`.
    type: u8,
    /// Type-specific flags (`close_flag_*` for close).
    flags: u8,
    /// The reactor that owns the session; -1 where a close came from the server.
    reactor_id: i16,
    /// The session the record is about; 0 where none.
    session_id: u32,
    /// The record type's own argument, as each type above says: a listener index (connect,
    /// receive, packet), an errno (close), how to close (close_request), a control code …
    aux: u32,
};
pub const record_align = 16;

/// The control block of one single-producer/single-consumer ring. The producer owns `tail` and
/// the consumer owns `head` (each on its own cache line); positions increase modulo 2^32 and
/// the data index is `position & (capacity - 1)`.
pub const RingControl = extern struct {
    /// Next byte the producer writes. Published with release order after the record is whole.
    tail: u32,
    /// Set by the producer when it found no room; the consumer clears it and wakes the producer
    /// after it frees space.
    producer_waiting: u32,
    _pad0: [56]u8 = @splat(0),
    /// Next byte the consumer reads. Stored with release order after the record is consumed.
    head: u32,
    /// Set by the consumer before it sleeps (then it re-checks tail); the producer clears it and
    /// rings the consumer's doorbell when it publishes.
    consumer_parked: u32,
    /// The position up to which the consumer has taken records into its hands (it publishes
    /// `head` only once it is done with them). A consumer that replaces a dead one (a respawned
    /// PROCESS-mode worker) starts here: what its predecessor was handling is not delivered
    /// twice.
    consumer_claim: u32 = 0,
    _pad1: [52]u8 = @splat(0),
};

/// Server-wide counters (Swoole's `stats()` fields that the reactor owns). Each is written with
/// atomic adds by reactor threads and read with atomic loads from anywhere.
pub const Stats = extern struct {
    /// Unix time in seconds when the server started.
    start_time: u64,
    /// Sessions currently open.
    connection_num: u64,
    accept_count: u64,
    close_count: u64,
    /// Sessions that ended by an error (reset by peer, failed write) or a reset close.
    abort_count: u64,
    /// Connections refused because `maxConnection` sessions were open.
    refused_count: u64,
    /// Records delivered to workers (connect, receive, close).
    dispatch_count: u64,
    total_recv_bytes: u64,
    total_send_bytes: u64,
    /// The last session id handed out.
    session_round: u64,
    /// Bytes queued in connections' output buffers, summed.
    send_queued_bytes: u64,
    /// Sends that arrived for a session that had already ended.
    send_dropped_count: u64,
    /// Sessions closed for a malformed or oversize message (framing).
    protocol_error_count: u64,
    /// Sessions the heartbeat closed (idle for `heartbeat_idle_time`), and WebSockets closed
    /// for `websocket_idle_timeout`.
    heartbeat_close_count: u64,
    /// HTTP (framing kind 5): requests read (those answered by the reactor too), files the
    /// reactor served itself (`enableStaticHandler`), and responses written by status class.
    http_request_count: u64,
    http_static_count: u64,
    http_1xx_count: u64,
    http_2xx_count: u64,
    http_3xx_count: u64,
    http_4xx_count: u64,
    http_5xx_count: u64,
    /// The same counters for each listening socket (`listen()` ports; the server's own is 0).
    ports: [ports_max]PortStats,
};

/// Listening sockets a server may have: its own and up to seven `listen()` ports.
pub const ports_max = 8;

/// One listening socket's share of `Stats`. The reactor that owns the `Stats` block is the only
/// writer (atomic stores, no read-modify-write); any process reads them with atomic loads.
pub const PortStats = extern struct {
    connection_num: u64,
    accept_count: u64,
    close_count: u64,
    abort_count: u64,
    refused_count: u64,
    dispatch_count: u64,
    total_recv_bytes: u64,
    total_send_bytes: u64,
    protocol_error_count: u64,
    heartbeat_close_count: u64,
    /// HTTP (framing kind 5): requests read (those answered by the reactor too), files the
    /// reactor served itself (`enableStaticHandler`), and responses written by status class.
    http_request_count: u64,
    http_static_count: u64,
    http_1xx_count: u64,
    http_2xx_count: u64,
    http_3xx_count: u64,
    http_4xx_count: u64,
    http_5xx_count: u64,
};

/// A channel is the shared-memory block between one reactor and one worker: the two ring
/// control blocks and the counters, followed (at `data_offset`) by the two rings' data areas.
pub const ChannelHeader = extern struct {
    magic: u32,
    /// Bytes in each ring's data area (a power of two).
    ring_bytes: u32,
    in_ctl: RingControl,
    out_ctl: RingControl,
    stats: Stats,
    /// A one-worker server's JavaScript counters, written by its JS once per batch as a tree's
    /// worker writes its `WorkerSlot`: another process (`ziggurat stats`) reads them here.
    published: Published,
};

/// What a one-worker server's JavaScript counts, each an f64 (the core never writes them).
pub const Published = extern struct {
    request_count: f64,
    response_count: f64,
    dispatch_count: f64,
    callback_error_count: f64,
    discard_count: f64,
    /// HTTP responses by status class, 1xx to 5xx.
    http: [5]f64,
    /// 1 while the JS thread handles a batch of events, else 0.
    busy: f64,
};
pub const channel_magic: u32 = 0x5a494747; // "ZIGG"
pub const data_offset = 4096;
comptime {
    assert(@sizeOf(ChannelHeader) <= data_offset);
}

/// What `zg_client_info` fills in for TypeScript's `getClientInfo`.
pub const ClientInfo = extern struct {
    session_id: u32,
    fd: i32,
    reactor_id: i32,
    server_fd: i32,
    server_port: u32,
    remote_port: u32,
    /// 4 or 6.
    family: u32,
    close_errno: i32,
    /// IPv4 in the first 4 bytes, or the 16 bytes of IPv6, network order.
    remote_addr: [16]u8,
    /// Unix times in seconds with fractions; 0 where the event did not happen yet.
    connect_time: f64,
    last_recv_time: f64,
    last_send_time: f64,
    last_dispatch_time: f64,
    /// Bytes queued in the session's output buffer.
    send_queued_bytes: u64,
    total_recv_bytes: u64,
    total_send_bytes: u64,
    /// `bind()`'s uid, or 0.
    uid: u32,
    /// PROCESS mode: the worker the session's events go to (its home worker).
    worker_id: u32,
    /// PROCESS mode with `max_queued_bytes`: bytes handed to workers and not yet handled.
    recv_queued_bytes: u64,
    /// The listening socket it came from: 0 the server's own, `i` the `i`th port.
    listener: u32,
    /// 1 while `protect()`ed: the heartbeat leaves it alone.
    protected: u32 = 0,
    /// Swoole's `websocket_status`: 0 not a WebSocket, 2 in the handshake, 3 open, 4 closing.
    websocket_status: u32 = 0,
};

/// Message framing (see framing.zig), set before start with `zg_reactors_framing`.
pub const FramingConfig = extern struct {
    /// 0 none (a stream), 1 EOF split, 2 EOF check, 3 length field, 4 a stream the worker
    /// frames (`package_length_func`).
    kind: u32,
    marker_len: u32,
    marker: [8]u8,
    /// A `framing.LengthType` (Swoole's pack code, an ASCII letter).
    length_type: u32,
    length_offset: u32,
    body_offset: u32,
    /// `package_max_length`: a longer message closes its session.
    max_length: u32,
    /// `buffer_high_watermark` / `buffer_low_watermark` in bytes of queued output (0: off).
    high_watermark: u32,
    low_watermark: u32,
    /// `enable_delay_receive`: a new session is not read until the worker `confirm`s it.
    delay_receive: u32,
    /// `open_tcp_keepalive` with `tcp_keepidle`, `tcp_keepinterval`, `tcp_keepcount` (0: the
    /// kernel's), and `tcp_user_timeout` in ms (0: the kernel's): set on every accepted socket.
    keepalive: u32,
    keep_idle: u32,
    keep_interval: u32,
    keep_count: u32,
    user_timeout_ms: u32,
    /// `kernel_socket_recv_buffer_size` / `kernel_socket_send_buffer_size` (0: the kernel's).
    recv_buffer: u32,
    send_buffer: u32,
    /// `max_queued_bytes` (the server's, PROCESS mode; 0: off): a session whose bytes handed
    /// to workers and not yet handled reach this is not read until they are down again.
    max_queued_bytes: u32,
    /// A port's `heartbeat_idle_time` in ms (0: the server's; the server's own is set with
    /// `zg_reactors_heartbeat`).
    heartbeat_idle_ms: u32,
    /// kind 5 (HTTP, see http.zig): the most bytes of a request head, header fields and
    /// request-target bytes (0: http.zig's defaults).
    http_max_head: u32,
    http_max_headers: u32,
    http_max_target: u32,
    /// kind 5: a request's head must be whole this long after its first byte (408 beyond), and
    /// a kept-alive connection with nothing in flight is closed after this long idle; in ms
    /// (0: off).
    http_header_timeout_ms: u32,
    http_keepalive_ms: u32,
    /// kind 5: a body slower than this many bytes a second, once it had the header timeout to
    /// get going, gets 408 (0: any pace).
    http_min_body_rate: u32,
    /// kind 5: requests of one connection in a worker's hands at once; the connection is not
    /// read further until one is answered (0: http.zig's default).
    http_max_pipelined: u32,
    /// `tcp_notsent_lowat`: TCP_NOTSENT_LOWAT of accepted sockets in bytes (0: the kernel's).
    notsent_lowat: u32,
    /// kind 5 with `open_websocket_protocol`: `websocket_session.Settings` bits (1 on, 2 the
    /// worker's handshake, 4/8/16 pings/pongs/closes to the worker too) and the most bytes of a
    /// message (0: 2 MiB).
    websocket: u32,
    websocket_max_message: u32,
    /// With `open_websocket_protocol`: a ping to a connection quiet this long, and a close
    /// (1001) for one that sent nothing this long; in ms (0: off).
    websocket_ping_ms: u32,
    websocket_idle_ms: u32,
    /// `open_proxy_protocol`: a connection's first bytes are a PROXY protocol header (version 1
    /// or 2) giving the client's address; without one it is closed (proxy_session.zig).
    proxy_protocol: u32,
};

/// An HTTP request as a worker gets it (kind 5): this, `header_count` `HttpHeader`s, the raw
/// head (`head_len` bytes), then the body, decoded (`body_len` bytes). Offsets are into the raw
/// head.
pub const HttpRequest = extern struct {
    head_len: u32,
    body_len: u32,
    header_count: u16,
    method_off: u16,
    method_len: u16,
    target_off: u16,
    target_len: u16,
    /// 0: HTTP/1.0, 1: HTTP/1.1.
    minor_version: u8,
    /// `http.flag_*`: keep-alive, chunked, expect 100-continue, upgrade.
    flags: u8,
    reserved: u32 = 0,
};

pub const HttpHeader = extern struct {
    name_off: u16,
    name_len: u16,
    value_off: u16,
    value_len: u16,
};

/// A send that ends an HTTP response: the reactor counts the connection's requests in flight
/// (and answers what waited for them: a rejection, a 100 Continue, a close).
pub const send_flag_response_end: u8 = 1;
/// A send with a part of an HTTP response that goes on (the head, a chunk): a worker that dies
/// now leaves the client a response cut short, not none.
pub const send_flag_response_part: u8 = 2;
/// A WebSocket send that leaves a message unfinished (a fragment without FIN, or a record of a
/// long push before its last): published frames for the session wait until it is finished.
pub const send_flag_ws_more: u8 = 4;
/// A WebSocket control frame (ping, pong, Close) a worker sends: it may come between the
/// fragments of a message and neither begins nor ends one.
pub const send_flag_ws_control: u8 = 8;

/// A receive record carries part of a message too large for one record; more follows.
pub const receive_flag_more: u8 = 1;
/// A receive record carries a later part of such a message, not its start. A worker that gets
/// one without the start (it replaced a worker that died halfway through) knows the message
/// is lost.
pub const receive_flag_continued: u8 = 2;

/// What `zg_server_create` takes. Zero fields mean "the default".
pub const ServerConfig = extern struct {
    /// Session table size; the maximum of concurrently open sessions.
    max_connection: u32,
    /// Per-session output buffer limit in bytes (TypeScript refuses sends beyond it).
    socket_buffer_size: u32,
    /// Bytes in each ring's data area; a power of two.
    ring_bytes: u32,
    /// How long shutdown waits for queued output, in milliseconds.
    max_wait_time_ms: u32,
    /// This reactor's id (the worker id in BASE mode).
    reactor_id: u32,
    /// Least severe level the core logs: 0 debug, 1 info, 2 warning, 3 error.
    log_level: u32,
    /// Workers in the tree (0 or 1 alone): this reactor hands out the session ids `i` with
    /// `(i - 1) % session_stride == reactor_id`, unique across the tree.
    session_stride: u32,
    /// PROCESS mode: the dispatch mode (1 round-robin, 2 fd modulo, 3 idle worker, 4 client IP
    /// hash, 5 uid), plus `dispatch_unsafe_event` to deliver connect/close in modes 1, 3, 5.
    dispatch: u32 = 0,
    /// Swoole's `start_session_id`: the first session id is this plus 1.
    start_session_id: u32 = 0,
};
pub const dispatch_unsafe_event: u32 = 0x100;

/// Sets close-on-exec on an inherited fd (a child's own children must not get it).
pub fn setCloexec(fd: i32) void {
    const std_posix = std.posix;
    _ = std_posix.fcntl(fd, std_posix.F.SETFD, std_posix.FD_CLOEXEC) catch {};
}

/// The region every process of a tree maps (created by the manager, passed down as an fd):
/// this header, one `WorkerSlot` per worker at `region_slots_offset`, and in PROCESS mode the
/// master's part: one `Stats` per reactor thread, one channel per (reactor thread, worker) pair
/// and one session table per reactor thread, each at the offset the header names.
pub const RegionHeader = extern struct {
    magic: u32,
    worker_num: u32,
    manager_pid: i32,
    /// PROCESS mode: reactor threads in the master; 0 in BASE mode.
    reactor_num: u32,
    /// Unix time in seconds when the manager started.
    start_time: u64,
    /// Bytes in each ring's data area (PROCESS).
    ring_bytes: u32,
    /// Session table slots per reactor thread, and the most sessions open at once (PROCESS).
    max_connection: u32,
    socket_buffer_size: u32,
    /// Sessions open across the master's reactor threads (PROCESS).
    connection_total: u32,
    reactor_stats_offset: u64,
    channels_offset: u64,
    /// Bytes from one channel to the next; channel (r, w) is number `r * worker_num + w`.
    channel_stride: u64,
    tables_offset: u64,
    table_stride: u64,
    task_worker_num: u32,
    user_process_num: u32,
    /// Bytes in each mailbox ring's data area.
    mail_ring_bytes: u32,
    /// Mailbox messages sent in the whole tree (Swoole's `pipe_packet_msg_id`).
    mail_count: u32,
    /// Mailboxes: one channel per pair of endpoints (see `RegionShape`).
    mail_offset: u64,
    mail_stride: u64,
    /// Publish/subscribe topic counts (topic_counts.zig): `topic_slots` keys, then a row per
    /// session table.
    topics_offset: u64,
    topic_slots: u32,
    /// 1 once the tree stops (`zg_region_set_stopping`): no worker carries its WebSockets on.
    stopping: u16 = 0,
    /// Whether the tree is in a balancer's rotation, as its health check says (written and read
    /// by TypeScript, src/operations/rotation.ts): 0 in, 1 taken out (`drain()`), 2 out until
    /// the shutdown a SIGTERM asked for, after its delay.
    rotation: u16 = 0,
};
pub const region_magic: u32 = 0x5a475254; // "ZGRT"
pub const region_slots_offset = 128;

/// What `zg_region_create` builds. Endpoints of the mailboxes are numbered: event workers
/// 0..worker_num-1, task workers next, user processes next, the master last; endpoints `a < b`
/// share one channel (its inbound ring is `b → a`, its outbound ring `a → b`).
pub const RegionShape = extern struct {
    worker_num: u32,
    task_worker_num: u32,
    user_process_num: u32,
    /// PROCESS mode: the master's reactor threads; 0 in BASE mode.
    reactor_num: u32,
    /// Ring size of the reactor channels (PROCESS).
    ring_bytes: u32,
    mail_ring_bytes: u32,
    max_connection: u32,
    socket_buffer_size: u32,
};

/// One worker's entry in the region. Written by that worker (and its pid and status by the
/// manager); read by every process for `stats()` and `getWorkerPid`.
pub const WorkerSlot = extern struct {
    pid: i32,
    /// Swoole's worker status: 0 not started, 1 busy, 2 idle, 3 exiting or exited (the master
    /// sets `pid` to 0 once the process is gone).
    status: u32,
    /// Counters the worker's JavaScript keeps, published once per batch.
    request_count: f64,
    response_count: f64,
    dispatch_count: f64,
    callback_error_count: f64,
    /// The worker's reactor counts here (instead of in its channel).
    stats: Stats,
    /// A task worker's tasks in hand: (sender endpoint, task id), task id 0 = free entry. If it
    /// dies, the master tells each sender which of its tasks were lost.
    running: [running_max]RunningTask,
    /// Tasks a task worker has taken and not finished (Swoole's `tasking_num`), and taken in
    /// all (`task_count`), counted by the task worker.
    tasking: u32,
    /// The last task id this slot's process handed out: a respawned sender goes on from here,
    /// so a result meant for its predecessor never settles one of its own tasks.
    task_seq: u32,
    /// `discard_timeout_request`: data of sessions that had closed when the worker got to it,
    /// dropped (counted by the worker's JavaScript, with the counters above).
    discard_count: f64,
};
pub const running_max = 256;
pub const RunningTask = extern struct { src: u32, task_id: u32 };

/// One child exit, as `zg_supervisor_wait` reports it.
pub const ChildExit = extern struct {
    /// The child's slot (the worker id it was spawned under).
    slot: u32,
    pid: i32,
    /// The exit code, or -1 when a signal ended it.
    code: i32,
    /// The signal that ended it, or 0.
    signal: i32,
};

pub const listen_flag_ipv6_only: u32 = 1;
pub const listen_flag_reuse_port: u32 = 2;
pub const listen_flag_tcp_nodelay: u32 = 4;
/// Bind without listening (reserve the port).
pub const listen_flag_bind_only: u32 = 8;
/// A Unix stream socket: the host is its path (an existing socket file there is replaced).
pub const listen_flag_unix: u32 = 16;
/// A UDP socket (bound, not listening): its datagrams arrive as `packet` records.
pub const listen_flag_udp: u32 = 32;

/// How a `packet` / `sendto` record's payload starts: the peer's address, then the datagram.
pub const PacketAddress = extern struct {
    /// 4 or 6, or 1 for a Unix datagram socket's path.
    family: u16,
    /// The port; for a path, its length in bytes (0: the peer has no name to answer to).
    port: u16,
    /// The bytes of the address before the datagram: 24, or for a path 8 + its length rounded
    /// up to 8 (the path starts at `addr` and may run past it).
    size: u32 = @sizeOf(PacketAddress),
    /// IPv4 in the first 4 bytes, or the 16 of IPv6, network order.
    addr: [16]u8,

    /// The longest address: a Unix socket path of 108 bytes.
    pub const max_size = 8 + 112;

    pub fn unixSize(path_len: usize) u32 {
        return @intCast(8 + std.mem.alignForward(usize, path_len, 8));
    }
};

/// The offsets TypeScript checks its mirror against; `zg_layout` writes them as u32s in this
/// order. Append only.
pub fn layout() [layout_len]u32 {
    return .{
        @sizeOf(RecordHeader),
        @offsetOf(RecordHeader, "len"),
        @offsetOf(RecordHeader, "type"),
        @offsetOf(RecordHeader, "flags"),
        @offsetOf(RecordHeader, "reactor_id"),
        @offsetOf(RecordHeader, "session_id"),
        @offsetOf(RecordHeader, "aux"),
        @sizeOf(RingControl),
        @offsetOf(RingControl, "tail"),
        @offsetOf(RingControl, "producer_waiting"),
        @offsetOf(RingControl, "head"),
        @offsetOf(RingControl, "consumer_parked"),
        @sizeOf(ChannelHeader),
        @offsetOf(ChannelHeader, "ring_bytes"),
        @offsetOf(ChannelHeader, "in_ctl"),
        @offsetOf(ChannelHeader, "out_ctl"),
        @offsetOf(ChannelHeader, "stats"),
        data_offset,
        @sizeOf(Stats),
        @sizeOf(ClientInfo),
        @offsetOf(ClientInfo, "remote_addr"),
        @offsetOf(ClientInfo, "connect_time"),
        @offsetOf(ClientInfo, "send_queued_bytes"),
        @sizeOf(ServerConfig),
        record_align,
        @sizeOf(ChildExit),
        @sizeOf(RegionHeader),
        region_slots_offset,
        @sizeOf(WorkerSlot),
        @offsetOf(WorkerSlot, "request_count"),
        @offsetOf(WorkerSlot, "stats"),
        @offsetOf(RingControl, "consumer_claim"),
        @offsetOf(RegionHeader, "reactor_num"),
        @offsetOf(RegionHeader, "reactor_stats_offset"),
        @offsetOf(RegionHeader, "channels_offset"),
        @offsetOf(RegionHeader, "channel_stride"),
        @sizeOf(RegionShape),
        @offsetOf(RegionHeader, "task_worker_num"),
        @offsetOf(RegionHeader, "mail_offset"),
        @offsetOf(RegionHeader, "mail_stride"),
        @offsetOf(WorkerSlot, "running"),
        running_max,
        @offsetOf(WorkerSlot, "tasking"),
        @offsetOf(WorkerSlot, "task_seq"),
        @offsetOf(RegionHeader, "mail_count"),
        @sizeOf(FramingConfig),
        @sizeOf(PacketAddress),
        @offsetOf(Stats, "ports"),
        @sizeOf(PortStats),
        @offsetOf(ClientInfo, "recv_queued_bytes"),
        @offsetOf(ClientInfo, "listener"),
        @offsetOf(ClientInfo, "protected"),
        @offsetOf(WorkerSlot, "discard_count"),
        @offsetOf(ChannelHeader, "published"),
        @offsetOf(RegionHeader, "rotation"),
    };
}
pub const layout_len = 55;

/// The structs and enums TypeScript writes or reads by name (src/_ffi/layout.ts).
const described = .{
    .{ "ServerConfig", ServerConfig },
    .{ "FramingConfig", FramingConfig },
    .{ "ClientInfo", ClientInfo },
    .{ "Stats", Stats },
    .{ "PortStats", PortStats },
    .{ "WorkerSlot", WorkerSlot },
    .{ "Published", Published },
    .{ "RecordType", RecordType },
    .{ "HttpRequest", HttpRequest },
    .{ "HttpHeader", HttpHeader },
};

/// A text table of every field (its byte offset) and enum value of `described`, one per line:
/// `struct ServerConfig 36`, `field max_connection 0`, …, `enum RecordType`, `value pad 0`.
/// TypeScript checks its own named offsets and values against it (tests/layout_test.ts), so a
/// field moved or a value renumbered on one side cannot pass.
pub fn describe(w: *std.Io.Writer) std.Io.Writer.Error!void {
    inline for (described) |entry| {
        const T = entry[1];
        switch (@typeInfo(T)) {
            .@"struct" => |info| {
                try w.print("struct {s} {d}\n", .{ entry[0], @sizeOf(T) });
                inline for (info.fields) |f| try w.print("field {s} {d}\n", .{ f.name, @offsetOf(T, f.name) });
            },
            .@"enum" => |info| {
                try w.print("enum {s}\n", .{entry[0]});
                inline for (info.fields) |f| try w.print("value {s} {d}\n", .{ f.name, f.value });
            },
            else => @compileError("describe: a struct or an enum"),
        }
    }
}

comptime {
    assert(@sizeOf(RecordHeader) == 16);
    assert(@sizeOf(RingControl) == 128);
    assert(@offsetOf(RingControl, "head") == 64);
    assert(@offsetOf(Stats, "ports") == 21 * 8);
    assert(@sizeOf(PortStats) == 17 * 8);
    assert(@sizeOf(ClientInfo) == 136);
    assert(@sizeOf(FramingConfig) == 132);
    assert(@sizeOf(ServerConfig) == 36);
    assert(@sizeOf(ChildExit) == 16);
    assert(@sizeOf(RegionHeader) <= region_slots_offset);
    assert(@sizeOf(RegionShape) == 32);
    assert(@sizeOf(WorkerSlot) % 8 == 0);
}
