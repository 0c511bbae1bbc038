/**
 * The C ABI of libziggurat (core/src/root.zig), in one table. Every function returns a status
 * (see `Status` in layout.ts) unless noted.
 * @module
 */

export const symbols = {
  zg_version: { parameters: [], result: "u32" },
  zg_last_errno: { parameters: [], result: "i32" },
  zg_layout: { parameters: ["buffer"], result: "i32" },
  /** A text table of the shared structs' fields and the enums' values (`abi.describe`). */
  zg_describe: { parameters: ["buffer", "usize"], result: "usize" },
  zg_server_create: { parameters: ["buffer", "buffer"], result: "i32" },
  zg_server_listen: {
    parameters: ["pointer", "buffer", "usize", "u32", "u32", "u32", "buffer"],
    result: "i32",
  },
  zg_server_channel: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  zg_server_start: { parameters: ["pointer", "u32"], result: "i32" },
  /** Inline mode: one reactor turn on the JS thread; returns `PollFlag` bits (not a status). */
  zg_server_poll: { parameters: ["pointer"], result: "u32" },
  /** Inline mode: sleeps until a socket or a kick is ready; runs on Deno's blocking pool. */
  zg_server_wait_io: { parameters: ["pointer"], result: "i32", nonblocking: true },
  zg_server_shutdown: { parameters: ["pointer"], result: "i32" },
  /** A set of reactors configured alike (api_reactors.zig): a server's one, the master's. */
  zg_server_reactors: { parameters: ["pointer"], result: "pointer" },
  zg_reactor_threads_set: { parameters: ["pointer"], result: "pointer" },
  /** The number of reactors in the set (not a status). */
  zg_reactors_count: { parameters: ["pointer"], result: "u32" },
  zg_reactors_framing: { parameters: ["pointer", "buffer"], result: "i32" },
  zg_reactors_port_framing: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  zg_reactors_heartbeat: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  zg_reactors_static: {
    parameters: ["pointer", "buffer", "u32", "buffer", "u32", "buffer", "u32"],
    result: "i32",
  },
  zg_reactors_kick_fds: { parameters: ["pointer", "buffer"], result: "i32" },
  /** The content type of a file name, written into the buffer; its length (not a status). */
  zg_content_type: { parameters: ["buffer", "u32", "buffer", "u32"], result: "u32" },
  zg_reactor_threads_add_listener: { parameters: ["pointer", "i32", "u32", "u32"], result: "i32" },
  zg_listen_options: { parameters: ["i32", "u32", "u32"], result: "i32" },
  /** Returns the fd or -1 (not a status). */
  zg_server_listen_fd: { parameters: ["pointer", "u32"], result: "i32" },
  zg_session_protect: { parameters: ["pointer", "pointer", "u32", "u32"], result: "i32" },
  /** (reactor or null, region or null, session id): its `WebSocketStatus` (0: none or gone). */
  zg_session_websocket: { parameters: ["pointer", "pointer", "u32"], result: "u32" },
  /** Blocks until the reactor rings the doorbell: runs on Deno's blocking pool. */
  zg_server_wait: { parameters: ["pointer"], result: "i32", nonblocking: true },
  /** Returns at once; awaiting it yields one turn of Deno's event loop. */
  zg_yield: { parameters: [], result: "i32", nonblocking: true },
  zg_server_destroy: { parameters: ["pointer"], result: "i32" },
  zg_listen: {
    parameters: ["buffer", "usize", "u32", "u32", "u32", "buffer", "buffer"],
    result: "i32",
  },
  zg_close_fd: { parameters: ["i32"], result: "i32" },
  zg_own_cmdline: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  zg_region_create: { parameters: ["buffer", "i32", "buffer", "buffer", "buffer"], result: "i32" },
  zg_eventfd: { parameters: ["buffer"], result: "i32" },
  zg_set_cloexec: { parameters: ["i32"], result: "i32" },
  zg_drop_privileges: { parameters: ["buffer", "usize", "buffer", "usize"], result: "i32" },
  zg_check_ids: {
    parameters: ["buffer", "usize", "buffer", "usize", "buffer"],
    result: "i32",
  },
  zg_pid_file_acquire: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  zg_pid_file_release: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  zg_pid_file_owner: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  zg_spawn_detached: {
    parameters: ["buffer", "usize", "buffer", "usize", "buffer", "usize", "i32", "buffer"],
    result: "i32",
  },
  zg_pipe: { parameters: ["buffer"], result: "i32" },
  zg_carry_pair: { parameters: ["buffer"], result: "i32" },
  zg_log_identity: { parameters: ["buffer", "usize", "u32"], result: "i32" },
  zg_notify: { parameters: ["buffer", "usize", "buffer", "usize"], result: "i32" },
  zg_listen_adopt: { parameters: ["i32", "buffer"], result: "i32" },
  /** Blocks until data or EOF: runs on Deno's blocking pool. Returns bytes, 0 EOF, -1 error. */
  zg_read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  zg_write_all: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  zg_log_open: {
    parameters: ["buffer", "usize", "u32", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  /** Returns the fd (not a status). */
  zg_server_wait_fd: { parameters: ["pointer", "u32"], result: "i32" },
  zg_signal_take: { parameters: ["u32", "i32"], result: "i32" },
  /** Returns 1 when the signal is still ours (not a status). */
  zg_signal_is_taken: { parameters: ["u32"], result: "u32" },
  /** Returns how many times the signal arrived (not a status). */
  zg_signal_count: { parameters: ["u32"], result: "u32" },
  zg_kill: { parameters: ["i32", "u32"], result: "i32" },
  /** Returns the fd (not a status). */
  zg_supervisor_kick_fd: { parameters: ["pointer"], result: "i32" },
  zg_server_use_doorbell: { parameters: ["pointer", "i32"], result: "i32" },
  zg_region_map: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  zg_server_use_region: { parameters: ["pointer", "pointer", "u32"], result: "i32" },
  zg_server_carry: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  zg_server_adopt: { parameters: ["pointer", "i32", "u32", "buffer"], result: "i32" },
  zg_supervisor_create: { parameters: ["buffer"], result: "i32" },
  zg_supervisor_destroy: { parameters: ["pointer"], result: "i32" },
  zg_supervisor_spawn: {
    parameters: ["pointer", "u32", "buffer", "usize", "buffer", "usize", "buffer", "u32", "buffer"],
    result: "i32",
  },
  /** Blocks until a child exits (or a kick, or the timeout); returns how many exits it wrote. */
  zg_supervisor_wait: {
    parameters: ["pointer", "buffer", "u32", "i32"],
    result: "u32",
    nonblocking: true,
  },
  zg_supervisor_kill: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  zg_supervisor_kick: { parameters: ["pointer"], result: "i32" },
  zg_die_with_parent: { parameters: ["u32", "i32"], result: "i32" },
  /** Returns the session state (not a status): 0 gone, 1 open, 2 peer closed, 3 closing, | 0x100 over the buffer limit. */
  zg_session_state: { parameters: ["pointer", "u32", "u32"], result: "u32" },
  zg_client_info: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  /** PROCESS mode, any process: as `zg_session_state`, from the region's session tables. */
  zg_region_session_state: { parameters: ["pointer", "u32", "u32"], result: "u32" },
  /** (reactor or null, region or null, session id, topic, its length, +1 / -1). */
  zg_topic_adjust: {
    parameters: ["pointer", "pointer", "u32", "buffer", "u32", "i32"],
    result: "i32",
  },
  /** (reactor or null, region or null, topic, its length): its subscribers. */
  zg_topic_count: { parameters: ["pointer", "pointer", "buffer", "u32"], result: "u32" },
  zg_region_client_info: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  zg_region_bind: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  zg_region_handled: { parameters: ["pointer", "u32", "u32"], result: "void" },
  zg_fd_range: { parameters: ["pointer", "pointer", "buffer"], result: "void" },
  /** Returns a count (not a status). */
  zg_region_open: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  /** Returns how many session ids it wrote (not a status). */
  zg_client_list: { parameters: ["pointer", "pointer", "u32", "u32", "buffer"], result: "u32" },
  zg_reactor_threads_create: {
    parameters: ["buffer", "pointer", "i32", "u32", "u32", "buffer", "buffer"],
    result: "i32",
  },
  zg_reactor_threads_start: { parameters: ["pointer"], result: "i32" },
  zg_reactor_threads_shutdown: { parameters: ["pointer"], result: "i32" },
  zg_reactor_threads_worker_exited: { parameters: ["pointer", "u32"], result: "i32" },
  zg_region_clear_table: { parameters: ["pointer", "u32"], result: "i32" },
  zg_region_set_stopping: { parameters: ["pointer"], result: "i32" },
  zg_region_stopping: { parameters: ["pointer"], result: "u32" },
  /** Blocks until every reactor thread stopped: runs on Deno's blocking pool. */
  zg_reactor_threads_join: { parameters: ["pointer"], result: "i32", nonblocking: true },
  zg_reactor_threads_destroy: { parameters: ["pointer"], result: "i32" },
  /** Blocks until the eventfd is written (a PROCESS worker's doorbell). */
  zg_fd_wait: { parameters: ["i32"], result: "i32", nonblocking: true },
  zg_fd_kick: { parameters: ["i32"], result: "i32" },
  /** Waits on the JS thread, bounded, for the doorbell; returns 1 when it rang, 0 on timeout. */
  zg_fd_wait_for: { parameters: ["i32", "u32"], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

export type Symbols = typeof symbols;
