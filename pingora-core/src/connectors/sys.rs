//! The two system calls the connectors need that neither tokio nor socket2 offers on a raw
//! socket: an integer socket option, and a non-blocking one-byte peek.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::unix::io::RawFd;

/// Sets an integer socket option.
pub(super) fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` and the length passed is its size; the kernel only
    // reads that many bytes.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Peeks at the next byte of socket `fd` without consuming it and without blocking: `Ok(0)`
/// at end of stream, `Ok(1)` if data is waiting, `WouldBlock` if neither.
pub(super) fn peek_byte(fd: RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: the buffer is one writable byte and its length is given as 1. The caller holds
    // the stream that owns `fd` for the duration of the call, so `fd` stays open.
    let ret = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}
