//! The table of listening sockets, keyed by listen address, and its hand-over from the old
//! server process to the new one during a graceful upgrade (see [`Fds`]).

// Sockets received through `SCM_RIGHTS` arrive as raw descriptor numbers; taking ownership of
// them needs `OwnedFd::from_raw_fd`, the one unsafe operation of this module.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::fs::Permissions;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
};
use pingora_error::{Error, ErrorType, OrErr, Result};

/// The most sockets one hand-over carries: the kernel's limit on descriptors in one
/// `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;
/// The largest payload (the space-separated listen addresses) a receiver accepts.
const MAX_PAYLOAD: usize = 64 * 1024;
/// How long one read or write on a connected upgrade socket may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The byte the new process answers with once it serves on the sockets.
const ACK: u8 = b'1';
/// How long the old process waits for that answer. A new process that dies first closes the
/// connection sooner, which the old one takes as a failed upgrade; one still starting after
/// this long is trusted to finish.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// How often connecting to or accepting on the upgrade socket is tried, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferRetry {
    /// Attempts in total, the first included; at least 1.
    pub(crate) attempts: usize,
    /// The pause between attempts.
    pub(crate) interval: Duration,
}

impl TransferRetry {
    /// Five attempts one second apart, unless `attempts` says otherwise.
    pub(crate) fn new(attempts: Option<usize>) -> Self {
        TransferRetry {
            attempts: attempts.unwrap_or(5).max(1),
            interval: Duration::from_secs(1),
        }
    }
}

/// The users whose processes may hand sockets over: root, the user of this process and,
/// when a daemon switches users, the configured `user` (an old daemon runs as that user while
/// the new process may be started as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustedPeers {
    uids: Vec<u32>,
}

impl TrustedPeers {
    /// Root, this process's effective user, and `extra`.
    pub(crate) fn new(extra: Option<u32>) -> Self {
        let mut uids = vec![0, nix::unistd::geteuid().as_raw()];
        uids.extend(extra);
        TrustedPeers { uids }
    }

    fn allows(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }
}

/// The new process's confirmation of a hand-over, not sent yet: it is sent once the new
/// process serves on the sockets. Dropping it unsent closes the connection, which tells the
/// old process that the upgrade failed, so that it keeps serving.
#[derive(Debug)]
pub(crate) struct PendingAck {
    stream: UnixStream,
}

impl PendingAck {
    /// Tells the old process it can stop.
    pub(crate) fn confirm(self) {
        match (&self.stream).write_all(&[ACK]) {
            Ok(()) => log::info!("told the old process that the sockets are taken over"),
            Err(e) => log::warn!("cannot confirm the hand-over to the old process: {e}"),
        }
    }
}

/// Listening sockets by listen address (such as `0.0.0.0:80` or a Unix socket path).
///
/// The table records the sockets the services bind ([`Fds::add`]); it does not own them, the
/// listeners that bound them do. The sockets received from an old process during a graceful
/// upgrade ([`Fds::get_from_sock`]) are owned by the table until a listener of the same
/// address takes them over; any left unclaimed are closed with the table.
///
/// # The hand-over protocol
///
/// Both processes name the same Unix socket (`upgrade_sock` in the configuration).
///
/// 1. The new process, started with `--upgrade`, removes any stale file at that path, binds
///    and listens there, and waits for the old process to connect: it checks once per retry
///    interval, for a bounded number of intervals.
/// 2. The old process, told to upgrade (`SIGQUIT`), connects to the socket (retrying the same
///    way while nobody listens yet) and sends **one** message: the listen addresses, separated
///    by spaces, as the payload, and the listening sockets, in the same order, as `SCM_RIGHTS`
///    ancillary data (at most 253, the kernel's limit). It then closes its writing side.
///    The new process only accepts a connection from a process of root, of its own user, or
///    of the configured `user`; others are refused and it goes on waiting.
/// 3. The new process reads the payload to its end, checks that there are as many addresses as
///    sockets and keeps the sockets. Once its services serve on them (a server answers when
///    all its services are ready), it answers with one byte. The old process waits for that
///    byte (for a minute at most): if the new process closes the connection instead, because
///    it failed or exited while starting, the upgrade has failed and the old process goes on
///    serving.
///
/// The kernel duplicates the sockets into the new process, so both processes accept on the
/// same sockets until the old one stops; connections waiting in a socket's queue stay there
/// for the new process, and none is refused.
#[derive(Default)]
pub struct Fds {
    map: HashMap<String, RawFd>,
    /// Sockets received from the old process that no listener has taken yet.
    received: HashMap<String, OwnedFd>,
}

// === impl Fds ===

impl Fds {
    /// An empty table.
    pub fn new() -> Self {
        Fds::default()
    }

    /// Records that `fd` listens on `bind`, replacing any earlier entry for `bind`.
    pub fn add(&mut self, bind: String, fd: RawFd) {
        self.map.insert(bind, fd);
    }

    /// The socket recorded for `bind` with [`Fds::add`] (or taken over by a listener after a
    /// graceful upgrade), if any.
    pub fn get(&self, bind: &str) -> Option<&RawFd> {
        self.map.get(bind)
    }

    /// How many sockets the table holds, received ones included.
    pub fn len(&self) -> usize {
        self.map.len() + self.received.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recorded sockets as two lists of the same length: the addresses and their sockets.
    pub fn serialize(&self) -> (Vec<String>, Vec<RawFd>) {
        self.map.iter().map(|(k, v)| (k.clone(), *v)).unzip()
    }

    /// Records the entries of two lists made by [`Fds::serialize`], as [`Fds::add`] does.
    /// Extra items of the longer list are ignored.
    pub fn deserialize(&mut self, binds: Vec<String>, fds: Vec<RawFd>) {
        self.map.extend(binds.into_iter().zip(fds));
    }

    /// Takes the socket received from the old process for `bind`, if any, so that a listener
    /// can use it instead of binding a new one.
    pub(crate) fn take_received(&mut self, bind: &str) -> Option<OwnedFd> {
        let fd = self.received.remove(bind)?;
        self.map.insert(bind.to_string(), fd.as_raw_fd());
        Some(fd)
    }

    /// Sends every socket of the table to the new process listening on the Unix socket
    /// `path`, following [the protocol](Fds#the-hand-over-protocol). Connecting is tried five
    /// times, one second apart. Returns how many sockets were sent.
    ///
    /// # Errors
    ///
    /// If no process listens at `path`, if sending fails, or if the new process does not
    /// confirm that it received the sockets.
    pub fn send_to_sock<P: AsRef<Path> + ?Sized>(&self, path: &P) -> Result<usize> {
        self.send_to_sock_with(path.as_ref(), TransferRetry::new(None))
    }

    /// Receives the sockets of the old process on the Unix socket `path`, following
    /// [the protocol](Fds#the-hand-over-protocol), and keeps them for the listeners to take
    /// over. Waits for the old process for five seconds, checking once a second.
    ///
    /// # Errors
    ///
    /// If `path` cannot be bound, if no old process connects in time, or if its message is
    /// malformed.
    pub fn get_from_sock<P: AsRef<Path> + ?Sized>(&mut self, path: &P) -> Result<()> {
        let (_, ack) = self.get_from_sock_with(
            path.as_ref(),
            TransferRetry::new(None),
            &TrustedPeers::new(None),
        )?;
        ack.confirm();
        Ok(())
    }

    /// [`send_to_sock`](Self::send_to_sock) with the given retries.
    pub(crate) fn send_to_sock_with(&self, path: &Path, retry: TransferRetry) -> Result<usize> {
        let (binds, fds) = self.sendable();
        send_listeners(path, &binds, &fds, retry)
    }

    /// [`get_from_sock`](Self::get_from_sock) with the given retries, accepting the sockets
    /// only from a process of a `trusted` user. Returns how many sockets were received, and the
    /// confirmation to send the old process once they are in use.
    pub(crate) fn get_from_sock_with(
        &mut self,
        path: &Path,
        retry: TransferRetry,
        trusted: &TrustedPeers,
    ) -> Result<(usize, PendingAck)> {
        let listener = bind_upgrade_sock(path)?;
        let accepted = accept_with_retry(&listener, path, retry, trusted);
        // The socket file has served its purpose either way; a stale one would only mislead
        // the next old process into connecting to nobody.
        let _ = std::fs::remove_file(path);
        let stream = accepted?;
        let (payload, fds) = receive_all(&stream).or_err_with(ErrorType::ReadError, || {
            format!(
                "cannot receive the listening sockets over {}",
                path.display()
            )
        })?;
        let payload = String::from_utf8(payload).or_err(
            ErrorType::ReadError,
            "the listen addresses sent by the old process are not UTF-8",
        )?;
        let binds: Vec<&str> = payload.split(' ').filter(|b| !b.is_empty()).collect();
        if binds.len() != fds.len() {
            return Error::e_explain(
                ErrorType::ReadError,
                format!(
                    "the old process sent {} listen addresses but {} sockets",
                    binds.len(),
                    fds.len()
                ),
            );
        }
        let count = fds.len();
        for (bind, fd) in binds.into_iter().zip(fds) {
            self.received.insert(bind.to_string(), fd);
        }
        Ok((count, PendingAck { stream }))
    }

    /// The entries to hand over: the recorded sockets and the received ones nobody took, minus
    /// addresses the space-separated payload cannot carry.
    pub(crate) fn sendable(&self) -> (Vec<String>, Vec<RawFd>) {
        self.map
            .iter()
            .map(|(bind, fd)| (bind, *fd))
            .chain(
                self.received
                    .iter()
                    .map(|(bind, fd)| (bind, fd.as_raw_fd())),
            )
            .filter(|(bind, _)| {
                let ok = !bind.is_empty() && !bind.contains(char::is_whitespace);
                if !ok {
                    log::warn!(
                        "the listening socket of {bind:?} cannot be handed over: its address \
                         contains white space"
                    );
                }
                ok
            })
            .map(|(bind, fd)| (bind.clone(), fd))
            .unzip()
    }
}

/// Sends the sockets `fds`, listening on `binds`, to the new process on the Unix socket
/// `path` (see [`Fds`]), and waits for its confirmation. The sockets must stay open meanwhile.
pub(crate) fn send_listeners(
    path: &Path,
    binds: &[String],
    fds: &[RawFd],
    retry: TransferRetry,
) -> Result<usize> {
    if fds.len() > MAX_FDS {
        return Error::e_explain(
            ErrorType::InternalError,
            format!(
                "cannot hand over {} listening sockets: at most {MAX_FDS} fit in one message",
                fds.len()
            ),
        );
    }
    if fds.is_empty() {
        return Ok(0);
    }
    let stream = connect_with_retry(path, retry)?;
    let payload = binds.join(" ");
    send_all(&stream, payload.as_bytes(), fds).or_err_with(ErrorType::WriteError, || {
        format!("cannot send the listening sockets over {}", path.display())
    })?;
    // The end of the payload tells the new process the message is complete.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(ACK_TIMEOUT));
    let mut ack = [0u8; 1];
    match (&stream).read(&mut ack) {
        Ok(1) if ack[0] == ACK => Ok(fds.len()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            // Alive, holding the sockets, but slow to start: it is the one serving now.
            log::warn!(
                "the new process on {} has not confirmed within {ACK_TIMEOUT:?}; handing over \
                 anyway",
                path.display()
            );
            Ok(fds.len())
        }
        Ok(_) => Error::e_explain(
            ErrorType::ReadError,
            format!(
                "the new process on {} closed the connection without confirming it took the \
                 listening sockets over (see its log)",
                path.display()
            ),
        ),
        Err(e) => Error::e_because(
            ErrorType::ReadError,
            format!(
                "no confirmation from the new process on {} that it took the listening \
                 sockets over",
                path.display()
            ),
            e,
        ),
    }
}

impl fmt::Debug for Fds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fds")
            .field("map", &self.map)
            .field("received", &self.received.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A copy of the recorded entries; sockets received and not yet taken stay with the original,
/// their only owner.
impl Clone for Fds {
    fn clone(&self) -> Self {
        Fds {
            map: self.map.clone(),
            received: HashMap::new(),
        }
    }
}

/// Tables are equal when they record the same addresses and descriptors.
impl PartialEq for Fds {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
            && self.received.len() == other.received.len()
            && self
                .received
                .iter()
                .all(|(k, v)| other.received.get(k).map(AsRawFd::as_raw_fd) == Some(v.as_raw_fd()))
    }
}

impl Eq for Fds {}

/// Binds and listens on the upgrade socket at `path`, replacing a stale file there.
fn bind_upgrade_sock(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => log::debug!("removed the stale upgrade socket {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!(
            "cannot remove the old upgrade socket {}: {e}",
            path.display()
        ),
    }
    let listener = UnixListener::bind(path).or_err_with(ErrorType::BindError, || {
        format!(
            "cannot listen on the upgrade socket {} (does its directory exist and is it \
             writable?)",
            path.display()
        )
    })?;
    // Let an old process running as another user connect.
    if let Err(e) = std::fs::set_permissions(path, Permissions::from_mode(0o666)) {
        log::warn!(
            "cannot open the upgrade socket {} to all users: {e}",
            path.display()
        );
    }
    listener.set_nonblocking(true).or_err(
        ErrorType::BindError,
        "cannot make the upgrade socket non-blocking",
    )?;
    Ok(listener)
}

/// Waits for the old process to connect, for `retry.attempts` intervals. Connections from
/// untrusted users are refused.
fn accept_with_retry(
    listener: &UnixListener,
    path: &Path,
    retry: TransferRetry,
    trusted: &TrustedPeers,
) -> Result<UnixStream> {
    log::info!(
        "waiting on {} for the old process to hand its listening sockets over",
        path.display()
    );
    for attempt in 0..=retry.attempts {
        // The extra turn takes a connection that arrived during the final wait.
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(stream) = check_peer(stream, trusted)? {
                    return Ok(stream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Error::e_because(
                    ErrorType::AcceptError,
                    format!("cannot accept on the upgrade socket {}", path.display()),
                    e,
                )
            }
        }
        if attempt == retry.attempts {
            break;
        }
        if attempt > 0 {
            log::info!(
                "no old process connected to {} yet (waited {attempt} of {} intervals)",
                path.display(),
                retry.attempts
            );
        }
        wait_readable(listener.as_fd(), retry.interval);
    }
    Error::e_explain(
        ErrorType::AcceptError,
        format!(
            "no old process handed its listening sockets over on {} within {:?}; start this \
             process with --upgrade first, then send SIGQUIT to the old one, both using the \
             same upgrade_sock",
            path.display(),
            retry.interval * retry.attempts as u32
        ),
    )
}

/// Returns the connection ready to use if its peer is trusted, `None` (the connection is
/// dropped) if not.
fn check_peer(stream: UnixStream, trusted: &TrustedPeers) -> Result<Option<UnixStream>> {
    let creds = getsockopt(&stream, sockopt::PeerCredentials).or_err(
        ErrorType::AcceptError,
        "cannot read the credentials of the upgrade connection",
    )?;
    if !trusted.allows(creds.uid()) {
        log::warn!(
            "refused a hand-over from process {} of user id {}: only root, this process's \
             user and the configured user may hand sockets over",
            creds.pid(),
            creds.uid()
        );
        return Ok(None);
    }
    stream.set_nonblocking(false).or_err(
        ErrorType::AcceptError,
        "cannot make the upgrade connection blocking",
    )?;
    set_timeouts(&stream)?;
    Ok(Some(stream))
}

/// Waits until `fd` is readable or `timeout` passes.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    // An error (such as EINTR) only shortens the wait; the caller tries again.
    let _ = poll(&mut fds, PollTimeout::from(millis));
}

/// Connects to the new process's upgrade socket, retrying while nobody listens there yet.
fn connect_with_retry(path: &Path, retry: TransferRetry) -> Result<UnixStream> {
    let mut attempt = 1;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => {
                set_timeouts(&stream)?;
                return Ok(stream);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && attempt < retry.attempts =>
            {
                log::info!(
                    "no new process listens on the upgrade socket {} yet ({e}); trying again \
                     in {:?} (attempt {attempt} of {})",
                    path.display(),
                    retry.interval,
                    retry.attempts
                );
                attempt += 1;
                std::thread::sleep(retry.interval);
            }
            Err(e) => {
                return Error::e_because(
                    ErrorType::ConnectError,
                    format!(
                        "cannot reach a new process on the upgrade socket {} after {attempt} \
                         attempts; start the new process with --upgrade and the same \
                         upgrade_sock",
                        path.display()
                    ),
                    e,
                );
            }
        }
    }
}

fn set_timeouts(stream: &UnixStream) -> Result<()> {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .or_err(
            ErrorType::InternalError,
            "cannot set upgrade socket timeouts",
        )
}

/// Sends `payload` with `fds` attached to its first byte.
fn send_all(stream: &UnixStream, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let mut sent = 0;
    while sent < payload.len() {
        // The sockets travel with the first bytes only.
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 { &rights } else { &[] };
        let iov = [IoSlice::new(&payload[sent..])];
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads the whole message of the old process: the payload up to its end, and the sockets
/// attached to it.
fn receive_all(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut payload = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let read = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel has just installed these descriptors in this process for
                // this message; nothing else in the process knows their numbers, so each
                // `OwnedFd` is their one owner.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if truncated {
            return Err(io::Error::other(format!(
                "more than {MAX_FDS} sockets were sent; the extra ones were dropped"
            )));
        }
        if read == 0 {
            return Ok((payload, fds));
        }
        payload.extend_from_slice(&buf[..read]);
        if payload.len() > MAX_PAYLOAD {
            return Err(io::Error::other(format!(
                "the list of listen addresses is longer than {MAX_PAYLOAD} bytes"
            )));
        }
    }
}

#[cfg(test)]
mod tests;
