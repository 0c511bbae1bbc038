//! The errno behind one of Zig's std error names, for the messages TypeScript builds: std's
//! calls turn errno values into names, and an error without its errno would read as EINVAL.

const std = @import("std");
const E = std.posix.E;

/// The errno `err` stands for; `fallback` when it stands for none.
pub fn of(err: anyerror, fallback: E) E {
    return switch (err) {
        error.AddressInUse, error.AddrInUse => .ADDRINUSE,
        error.AddressNotAvailable, error.AddrNotAvailable => .ADDRNOTAVAIL,
        error.AddressFamilyNotSupported => .AFNOSUPPORT,
        error.AccessDenied, error.PermissionDenied => .ACCES,
        error.ProcessFdQuotaExceeded => .MFILE,
        error.SystemFdQuotaExceeded => .NFILE,
        error.SystemResources => .NOBUFS,
        error.OutOfMemory => .NOMEM,
        error.FileNotFound => .NOENT,
        error.NotDir => .NOTDIR,
        error.IsDir => .ISDIR,
        error.SymLinkLoop => .LOOP,
        error.NameTooLong => .NAMETOOLONG,
        error.PathAlreadyExists => .EXIST,
        error.NoSpaceLeft => .NOSPC,
        error.DiskQuota => .DQUOT,
        error.FileTooBig => .FBIG,
        error.ReadOnlyFileSystem => .ROFS,
        error.FileBusy => .TXTBSY,
        error.DeviceBusy => .BUSY,
        error.NoDevice => .NODEV,
        error.InputOutput => .IO,
        error.WouldBlock => .AGAIN,
        error.BrokenPipe => .PIPE,
        error.ConnectionResetByPeer => .CONNRESET,
        error.ConnectionRefused => .CONNREFUSED,
        error.NetworkUnreachable => .NETUNREACH,
        error.BadPathName, error.InvalidUtf8, error.InvalidWtf8 => .INVAL,
        error.FileLocksNotSupported => .OPNOTSUPP,
        error.ProcessNotFound => .SRCH,
        else => fallback,
    };
}

test "errno: std's error names map back to their errno; others to the fallback" {
    try std.testing.expectEqual(E.NOENT, of(error.FileNotFound, .INVAL));
    try std.testing.expectEqual(E.LOOP, of(error.SymLinkLoop, .INVAL));
    try std.testing.expectEqual(E.ADDRINUSE, of(error.AddressInUse, .INVAL));
    try std.testing.expectEqual(E.IO, of(error.SomethingElse, .IO));
}
