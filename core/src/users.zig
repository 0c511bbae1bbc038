//! `user` / `group`: the ids the workers run as. Names or numbers; a user without a group gets
//! the user's own group. The master checks them before anything listens; each worker drops to
//! them before its first callback.
const std = @import("std");
const c = std.c;

extern "c" fn getpwuid(uid: c.uid_t) ?*c.passwd;
extern "c" fn getgid() c.gid_t;
extern "c" fn setgroups(size: usize, list: [*]const c.gid_t) c_int;

/// A file's owner to set (maxInt: leave that id as it is).
pub const Owner = struct { uid: c.uid_t, gid: c.gid_t };

pub const Ids = struct {
    uid: ?c.uid_t = null,
    gid: ?c.gid_t = null,

    /// The ids of `user` and `group` (empty: none). Null when a name is unknown.
    pub fn lookup(user: []const u8, group: []const u8) ?Ids {
        var ids: Ids = .{};
        var name: [256]u8 = undefined;
        if (user.len > 0) {
            if (user.len >= name.len) return null;
            const number = std.fmt.parseInt(c.uid_t, user, 10) catch null;
            const entry = if (number) |n| getpwuid(n) else blk: {
                @memcpy(name[0..user.len], user);
                name[user.len] = 0;
                break :blk c.getpwnam(@ptrCast(&name));
            };
            if (entry) |e| {
                ids.uid = e.uid;
                ids.gid = e.gid;
            } else if (number) |n| {
                ids.uid = n; // a number with no passwd entry: its group must be given
            } else return null;
        }
        if (group.len > 0) {
            if (group.len >= name.len) return null;
            if (std.fmt.parseInt(c.gid_t, group, 10)) |n| {
                ids.gid = n;
            } else |_| {
                @memcpy(name[0..group.len], group);
                name[group.len] = 0;
                const entry: *const c.group = @ptrCast(@alignCast(c.getgrnam(@ptrCast(&name)) orelse return null));
                ids.gid = entry.gid;
            }
        }
        return ids;
    }

    /// This process runs as them already (nothing to give up).
    pub fn areOwn(ids: Ids) bool {
        return (ids.uid == null or ids.uid.? == c.getuid()) and (ids.gid == null or ids.gid.? == getgid());
    }

    /// Gives up root for these ids: supplementary groups dropped, then the group (it can no
    /// longer change once the user id is dropped), then the user. A non-root process that runs
    /// as them already has nothing to do. The errno of a refusal is in `errno_out`.
    pub fn drop(ids: Ids, errno_out: *i32) error{Os}!void {
        if (c.geteuid() != 0 and ids.areOwn()) return;
        const one = [1]c.gid_t{ids.gid orelse getgid()};
        if (setgroups(1, &one) != 0) return fail(errno_out);
        if (ids.gid) |g| {
            if (c.setgid(g) != 0) return fail(errno_out);
        }
        if (ids.uid) |u| {
            if (c.setuid(u) != 0) return fail(errno_out);
        }
    }

    /// Ids for fchown: null ones stay as they are.
    pub fn owner(ids: Ids) Owner {
        const keep: c.uid_t = std.math.maxInt(c.uid_t);
        return .{ .uid = ids.uid orelse keep, .gid = ids.gid orelse keep };
    }
};

fn fail(errno_out: *i32) error{Os} {
    errno_out.* = @intFromEnum(std.posix.errno(@as(c_int, -1)));
    return error.Os;
}

pub const Check = enum { ok, no_user, no_group, not_root };

/// Before anything listens: can this process run workers as `user` / `group`?
pub fn check(user: []const u8, group: []const u8) Check {
    if (user.len > 0 and Ids.lookup(user, "") == null) return .no_user;
    const ids = Ids.lookup(user, group) orelse return .no_group;
    return if (c.geteuid() == 0 or ids.areOwn()) .ok else .not_root;
}

test "users: unknown names are told apart; this process's own ids need no root" {
    try std.testing.expectEqual(Check.no_user, check("no-such-user-zg", ""));
    try std.testing.expectEqual(Check.no_group, check("", "no-such-group-zg"));
    var buffer: [16]u8 = undefined;
    const own = try std.fmt.bufPrint(&buffer, "{d}", .{c.getuid()});
    try std.testing.expectEqual(Check.ok, check(own, ""));
    try std.testing.expect(Ids.lookup(own, "").?.uid.? == c.getuid());
}
