//! Daemonization: running the server in the background, detached from the terminal.
//!
//! [`daemonize`] forks once. The parent (the process the user started) exits, by default at
//! once; with `daemon_wait_for_ready` it waits until the daemon reports that its services are
//! ready, and exits with status 0, or with status 1 if the daemon exits or does not report in
//! time. The child starts a new session, changes directory, writes its pid file, redirects its
//! standard streams (standard error to `error_log`) and drops privileges, then runs the
//! server.

// `fork` is unsafe: only the calling thread survives in the child.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{self, ForkResult, Gid, Group, Uid, User};
use pingora_error::{Error, ErrorType, OrErr, Result};

use super::configuration::ServerConf;

/// How long the parent waits for the daemon to be ready when the configuration does not say.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Held by the daemon: tells the process that started it that the daemon is ready.
#[derive(Debug)]
pub(crate) struct ReadyNotifier {
    /// The writing end of the pipe the parent waits on; `None` when the parent does not wait.
    pipe: Option<OwnedFd>,
}

/// The identity the daemon switches to.
#[derive(Debug)]
struct Identity {
    user: Option<User>,
    group: Option<Gid>,
}

impl ReadyNotifier {
    /// Tells the parent the daemon is ready, once; later calls do nothing.
    pub(crate) fn notify(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            match unistd::write(&pipe, b"1") {
                Ok(_) => log::info!("told the parent process that the daemon is ready"),
                // The parent gave up waiting; there is nobody left to tell.
                Err(e) => log::warn!("cannot tell the parent process the daemon is ready: {e}"),
            }
        }
    }
}

/// Turns this process into a daemon as `conf` says. Returns in the daemon only; the process
/// that called it exits.
///
/// Threads started before this call do not exist in the daemon: daemonize before starting
/// any, as [`Server::run`](super::Server::run) does.
///
/// # Errors
///
/// Before forking, if the user or group does not exist or the error log cannot be opened;
/// these are reported on the terminal. After forking, the daemon exits with status 1 and
/// reports on its error log if it cannot set itself up.
pub(crate) fn daemonize(conf: &ServerConf) -> Result<ReadyNotifier> {
    let identity = resolve_identity(conf)?;
    let error_log = match &conf.error_log {
        Some(path) => Some(open_error_log(path)?),
        None => None,
    };
    let dev_null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .or_err(ErrorType::InternalError, "cannot open /dev/null")?;
    let pipe = if conf.daemon_wait_for_ready {
        Some(
            unistd::pipe2(OFlag::O_CLOEXEC)
                .or_err(ErrorType::InternalError, "cannot create the readiness pipe")?,
        )
    } else {
        None
    };
    let timeout = conf
        .daemon_ready_timeout_seconds
        .map_or(DEFAULT_READY_TIMEOUT, |s| Duration::from_secs(s.get()));

    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    pingora_timeout::fast_timeout::pause_for_fork();
    // SAFETY: the child only continues this thread's work; the server has not started its
    // runtimes yet, and the fast-timer thread is paused (and restarted below) so that none of
    // its locks is held across the fork.
    let forked = unsafe { unistd::fork() };
    pingora_timeout::fast_timeout::unpause();
    match forked.or_err(ErrorType::InternalError, "fork() failed")? {
        ForkResult::Parent { child } => {
            let code = match pipe {
                Some((read, write)) => {
                    drop(write);
                    wait_for_ready(read, child, timeout)
                }
                None => 0,
            };
            std::process::exit(code)
        }
        ForkResult::Child => {
            let notifier = ReadyNotifier {
                pipe: pipe.map(|(read, write)| {
                    drop(read);
                    write
                }),
            };
            if let Err(e) = set_up_daemon(conf, &identity) {
                fail(&e, error_log.as_ref());
            }
            if let Err(e) = redirect_stdio(error_log.as_ref(), &dev_null) {
                fail(&e, error_log.as_ref());
            }
            if let Err(e) = drop_privileges(identity) {
                // Standard error is the error log by now.
                fail(&e, None);
            }
            Ok(notifier)
        }
    }
}

/// In the child: reports why the daemon cannot start, on standard error and in `error_log`,
/// and exits with status 1 (which the parent, if waiting, notices).
fn fail(e: &Error, error_log: Option<&File>) -> ! {
    let message = format!("the daemon cannot start: {e}");
    eprintln!("{message}");
    if let Some(mut log) = error_log {
        let _ = writeln!(log, "{message}");
    }
    std::process::exit(1)
}

/// In the parent: waits for the daemon's readiness byte. Returns the exit status.
fn wait_for_ready(read: OwnedFd, child: unistd::Pid, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("the daemon (pid {child}) did not report ready within {timeout:?}");
            return 1;
        }
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                eprintln!("cannot wait for the daemon (pid {child}): {e}");
                return 1;
            }
        }
        let mut byte = [0u8; 1];
        return match unistd::read(&read, &mut byte) {
            Ok(1) => 0,
            Ok(_) => {
                eprintln!("the daemon (pid {child}) exited before it was ready; see its error log");
                1
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("cannot wait for the daemon (pid {child}): {e}");
                1
            }
        };
    }
}

/// In the child: the steps that make it a daemon, up to the pid file.
fn set_up_daemon(conf: &ServerConf, identity: &Identity) -> Result<()> {
    unistd::setsid().or_err(ErrorType::InternalError, "setsid() failed")?;
    if let Some(dir) = &conf.working_directory {
        unistd::chdir(dir.as_str()).or_err_with(ErrorType::InternalError, || {
            format!("cannot change to the working directory {dir}")
        })?;
    }
    // Files the daemon creates are not readable by others.
    umask(Mode::from_bits_truncate(0o007));
    write_pid_file(&conf.pid_file, identity)
}

/// Points standard input and output at `/dev/null`, and standard error at the error log (or
/// `/dev/null`).
fn redirect_stdio(error_log: Option<&File>, dev_null: &File) -> Result<()> {
    unistd::dup2_stdin(dev_null).or_err(ErrorType::InternalError, "cannot redirect stdin")?;
    unistd::dup2_stdout(dev_null).or_err(ErrorType::InternalError, "cannot redirect stdout")?;
    unistd::dup2_stderr(error_log.unwrap_or(dev_null))
        .or_err(ErrorType::InternalError, "cannot redirect stderr")
}

/// Writes this process's id to `path`, first renaming an existing file to `<path>.old` (the
/// pid file of the process being upgraded, typically).
fn write_pid_file(path: &str, identity: &Identity) -> Result<()> {
    if Path::new(path).exists() {
        let old = PathBuf::from(format!("{path}.old"));
        std::fs::rename(path, &old).or_err_with(ErrorType::InternalError, || {
            format!("cannot rename the pid file {path} to {}", old.display())
        })?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .or_err_with(ErrorType::InternalError, || {
            format!("cannot create the pid file {path}")
        })?;
    writeln!(file, "{}", std::process::id()).or_err_with(ErrorType::WriteError, || {
        format!("cannot write the pid file {path}")
    })?;
    if let Some(user) = &identity.user {
        let group = identity.group.unwrap_or(user.gid);
        unistd::chown(path, Some(user.uid), Some(group))
            .or_err_with(ErrorType::InternalError, || {
                format!("cannot give the pid file {path} to {}", user.name)
            })?;
    }
    Ok(())
}

/// Looks the configured user and group up, so a typo is reported before forking.
fn resolve_identity(conf: &ServerConf) -> Result<Identity> {
    let user = match &conf.user {
        Some(name) => Some(
            User::from_name(name)
                .or_err_with(ErrorType::InternalError, || {
                    format!("cannot look the user {name} up")
                })?
                .ok_or_else(|| {
                    Error::explain(
                        ErrorType::InternalError,
                        format!("the configured user {name} does not exist"),
                    )
                })?,
        ),
        None => None,
    };
    let group = match &conf.group {
        Some(name) => Some(
            Group::from_name(name)
                .or_err_with(ErrorType::InternalError, || {
                    format!("cannot look the group {name} up")
                })?
                .ok_or_else(|| {
                    Error::explain(
                        ErrorType::InternalError,
                        format!("the configured group {name} does not exist"),
                    )
                })?
                .gid,
        ),
        None => None,
    };
    Ok(Identity { user, group })
}

/// Switches to the configured group, then user (with that user's supplementary groups).
fn drop_privileges(identity: Identity) -> Result<()> {
    let gid = identity.group.or(identity.user.as_ref().map(|u| u.gid));
    let uid = identity.user.as_ref().map(|u| u.uid);
    if uid.is_none_or(|uid| uid == Uid::current()) && gid.is_none_or(|gid| gid == Gid::current()) {
        // Already that user and group: nothing to switch, and an unprivileged process could
        // not set its supplementary groups anyway.
        return Ok(());
    }
    if let Some(gid) = gid {
        if let Some(user) = &identity.user {
            let name = std::ffi::CString::new(user.name.as_str())
                .or_err(ErrorType::InternalError, "user name contains a NUL byte")?;
            unistd::initgroups(&name, gid).or_err_with(ErrorType::InternalError, || {
                format!("cannot set the supplementary groups of {}", user.name)
            })?;
        }
        unistd::setgid(gid).or_err_with(ErrorType::InternalError, || {
            format!("cannot switch to group id {gid}")
        })?;
    }
    if let Some(user) = &identity.user {
        unistd::setuid(user.uid).or_err_with(ErrorType::InternalError, || {
            format!("cannot switch to user {}", user.name)
        })?;
        log::info!("running as user {} ({})", user.name, Uid::current());
    }
    Ok(())
}

/// Opens the error log for appending, creating it if needed.
fn open_error_log(path: &str) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .or_err_with(ErrorType::InternalError, || {
            format!("cannot open the error log {path}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_or_group_is_reported_before_forking() {
        let conf = ServerConf {
            user: Some("no-such-user-pingora".into()),
            ..ServerConf::default()
        };
        let err = resolve_identity(&conf).unwrap_err();
        assert!(err.to_string().contains("no-such-user-pingora"), "{err}");
        let conf = ServerConf {
            group: Some("no-such-group-pingora".into()),
            ..ServerConf::default()
        };
        let err = resolve_identity(&conf).unwrap_err();
        assert!(err.to_string().contains("no-such-group-pingora"), "{err}");
        let conf = ServerConf {
            user: Some("root".into()),
            group: Some("root".into()),
            ..ServerConf::default()
        };
        let identity = resolve_identity(&conf).unwrap();
        assert_eq!(identity.user.unwrap().uid, Uid::from_raw(0));
        assert_eq!(identity.group, Some(Gid::from_raw(0)));
    }

    #[test]
    fn pid_file_keeps_the_previous_one_as_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pid");
        let path_str = path.display().to_string();
        std::fs::write(&path, "12345\n").unwrap();
        let identity = Identity {
            user: None,
            group: None,
        };
        write_pid_file(&path_str, &identity).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(
            std::fs::read_to_string(format!("{path_str}.old")).unwrap(),
            "12345\n"
        );
        let err = write_pid_file("/nonexistent-dir/x.pid", &identity).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.pid"), "{err}");
        let err = open_error_log("/nonexistent-dir/err.log").unwrap_err();
        assert!(err.to_string().contains("error log"), "{err}");
    }
}
