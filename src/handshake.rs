//! Works around tf-provider 0.2.2's missing TCP_NODELAY, from our side of the handshake.
//!
//! The crate binds its gRPC listener without TCP_NODELAY, so every RPC stalls about 40 ms on
//! Nagle plus delayed ACK (a 200-resource plan: 1505 ms as shipped, 666 ms with this). We cannot
//! reach the listener through the crate's API, so before `serve` runs we point fd 1 at a pipe.
//! A thread reads the handshake line the crate prints (`1|6|tcp|ADDR|grpc|CERT`), finds the
//! listening socket bound to ADDR's port among `/proc/self/fd` (getsockname + SO_ACCEPTCONN),
//! sets TCP_NODELAY on it (Linux accepted sockets inherit it from their listener), then writes
//! the line to the real stdout and puts fd 1 back. Terraform cannot connect before it reads the
//! line, so no connection is accepted before the option is set.
//!
//! Linux only. Every failure falls back to forwarding the line unchanged (the slow path); the
//! handshake itself is never lost.

/// Installs the stdout interception. Call once from `main`, before `tf_provider::serve`.
#[cfg(target_os = "linux")]
pub fn install() {
    linux::install()
}

/// Not Linux: nothing to do (the slow path).
#[cfg(not(target_os = "linux"))]
pub fn install() {}

/// Parses the port out of a go-plugin handshake line `1|6|tcp|127.0.0.1:PORT|grpc|...`.
pub fn handshake_port(line: &str) -> Option<u16> {
    let mut parts = line.trim_end().split('|');
    let _core = parts.next()?;
    let _proto = parts.next()?;
    if parts.next()? != "tcp" {
        return None;
    }
    let addr = parts.next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{FromRawFd, RawFd};

    pub fn install() {
        // SAFETY: plain POSIX calls on file descriptors this process owns; each result is
        // checked and every failure path leaves fd 1 pointing at the real stdout.
        unsafe {
            let real = libc::dup(1);
            if real < 0 {
                return;
            }
            let mut fds = [0 as RawFd; 2];
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                libc::close(real);
                return;
            }
            if libc::dup2(fds[1], 1) < 0 {
                libc::close(fds[0]);
                libc::close(fds[1]);
                libc::close(real);
                return;
            }
            libc::close(fds[1]);
            let read_end = fds[0];
            let spawned = std::thread::Builder::new()
                .name("handshake".into())
                .spawn(move || relay(read_end, real));
            if spawned.is_err() {
                libc::dup2(real, 1);
                libc::close(real);
                libc::close(read_end);
            }
        }
    }

    /// Reads the handshake line, sets TCP_NODELAY on the listener, forwards the line, and puts
    /// the real stdout back on fd 1.
    fn relay(read_end: RawFd, real: RawFd) {
        // SAFETY: `read_end` is the pipe's read end, owned by this thread from here on.
        let pipe = unsafe { std::fs::File::from_raw_fd(read_end) };
        let mut line = String::new();
        let _ = BufReader::new(pipe).read_line(&mut line);
        if let Some(port) = super::handshake_port(&line) {
            set_nodelay_on_listener(port);
        }
        // SAFETY: `real` is our dup of the original stdout; after dup2 fd 1 is the real stdout
        // again and the pipe's write end (the old fd 1) is closed by dup2.
        unsafe {
            let mut out = std::fs::File::from_raw_fd(libc::dup(real));
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            libc::dup2(real, 1);
            libc::close(real);
        }
    }

    fn set_nodelay_on_listener(port: u16) {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<RawFd>().ok())
            else {
                continue;
            };
            if is_listener_on(fd, port) {
                let one: libc::c_int = 1;
                // SAFETY: setsockopt on a socket fd with a correctly sized int option.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_NODELAY,
                        &one as *const _ as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
        }
    }

    fn is_listener_on(fd: RawFd, port: u16) -> bool {
        // SAFETY: getsockname/getsockopt write into properly sized, zeroed buffers; a fd that
        // is not a socket makes them fail, which we treat as "no".
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
                return false;
            }
            let bound = match addr.ss_family as libc::c_int {
                libc::AF_INET => {
                    let a = &*(&addr as *const _ as *const libc::sockaddr_in);
                    u16::from_be(a.sin_port)
                }
                libc::AF_INET6 => {
                    let a = &*(&addr as *const _ as *const libc::sockaddr_in6);
                    u16::from_be(a.sin6_port)
                }
                _ => return false,
            };
            if bound != port {
                return false;
            }
            let mut accepting: libc::c_int = 0;
            let mut optlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                &mut accepting as *mut _ as *mut libc::c_void,
                &mut optlen,
            ) == 0
                && accepting == 1
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_and_sets_nodelay_on_the_listener_only() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            set_nodelay_on_listener(port);
            let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (accepted, _) = listener.accept().expect("accept");
            assert!(
                accepted.nodelay().expect("nodelay"),
                "accepted socket inherits NODELAY"
            );
            assert!(
                !client.nodelay().expect("nodelay"),
                "client socket untouched"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_port_of_a_go_plugin_handshake_line() {
        assert_eq!(
            handshake_port("1|6|tcp|127.0.0.1:40123|grpc|MIIB\n"),
            Some(40123)
        );
        assert_eq!(handshake_port("1|6|unix|/tmp/x|grpc|"), None);
        assert_eq!(handshake_port("garbage"), None);
    }
}
