//! Socket activation: the listening socket a service manager hands over (systemd's protocol:
//! `LISTEN_FDS` sockets from descriptor 3, for the process `LISTEN_PID`), read through the
//! `listenfd` crate.
//!
//! The socket belongs to the manager (a systemd `.socket` unit), not to the process, so it stays
//! open across a restart: while the old process drains and the new one starts, new connections
//! wait in its accept queue instead of being refused, and the new process accepts them. Without
//! it a restart has a gap: isr refuses a port another process listens on, so the new process
//! can only bind once the old one has closed it. `deploy/systemd/isr-app.socket` is such a unit;
//! `tests/tests/socket_activation.rs` restarts the blog on one socket under load.

use std::net::TcpListener;

/// Takes the TCP listening socket the service manager passed, if it passed one to this
/// process. Unsets `LISTEN_FDS` and `LISTEN_PID` (so no process the app starts, such as the
/// client build's cargo, takes it too) and marks the socket close-on-exec. Edits the
/// environment: call it before the process starts any thread.
///
/// # Errors
/// A message naming `LISTEN_FDS` when more than one socket was passed (isr listens on one), or
/// the one passed is not a listening TCP socket (a UDP or Unix socket, or a connection: a
/// `.socket` unit with `Accept=yes`).
pub(super) fn take_passed_socket() -> Result<Option<TcpListener>, String> {
    #[cfg(unix)]
    {
        let mut passed = listenfd::ListenFd::from_env();
        if passed.len() > 1 {
            return Err(format!(
                "LISTEN_FDS: {} sockets were passed; isr listens on one (give the .socket unit one ListenStream=)",
                passed.len()
            ));
        }
        let Some(socket) = passed.take_tcp_listener(0).map_err(|error| {
            format!("LISTEN_FDS: the socket passed is not a TCP listening socket ({error})")
        })?
        else {
            return Ok(None);
        };
        // A `.socket` unit with `Accept=yes` passes a connection, not the listening socket:
        // accepting on it would fail forever. (Apple's kernels do not answer SO_ACCEPTCONN.)
        #[cfg(not(target_vendor = "apple"))]
        match rustix::net::sockopt::socket_acceptconn(&socket) {
            Ok(true) => {}
            Ok(false) => return Err(
                "LISTEN_FDS: the socket passed is not listening (a .socket unit with Accept=yes passes connections; isr needs Accept=no, the default)"
                    .to_string(),
            ),
            Err(error) => return Err(format!("LISTEN_FDS: cannot read the socket passed ({error})")),
        }
        Ok(Some(socket))
    }
    // The protocol is systemd's; Windows has no such hand-over here.
    #[cfg(not(unix))]
    Ok(None)
}
