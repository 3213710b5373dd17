//! The simulated modem on a pseudo-terminal, at a path (a symlink to the
//! pty's slave, as `/dev/ttyUSB0` would be a device): clients open it as a
//! serial port. It can vanish (an unplugged USB modem) and reappear.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::link::Shared;

/// A simulated modem's pty at its link (see `SimModem::on_pty`). Dropping
/// it makes the port vanish.
#[derive(Debug)]
pub struct PtyHandle {
    shared: Shared,
    link: PathBuf,
    live: Option<Live>,
}

/// A pty being served.
#[derive(Debug)]
struct Live {
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
    /// Held open so that the master side never reads end-of-file (EIO)
    /// while no client has the port open.
    _slave: OwnedFd,
    device: PathBuf,
}

impl PtyHandle {
    /// A new pty at `link`, served by `shared`'s modem.
    pub(super) fn open(shared: Shared, link: &Path) -> io::Result<Self> {
        let mut handle = PtyHandle {
            shared,
            link: link.to_owned(),
            live: None,
        };
        handle.live = Some(handle.start()?);
        Ok(handle)
    }

    /// The path clients open.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The pty's slave device (`/dev/pts/N`) the link points to; `None`
    /// while the port has vanished.
    pub fn device(&self) -> Option<&Path> {
        self.live.as_ref().map(|live| live.device.as_path())
    }

    /// The port disappears, as an unplugged USB modem: the pty is closed
    /// (a client with it open reads end-of-file or EIO) and the link removed.
    pub async fn vanish(&mut self) {
        if let Some(live) = self.live.take() {
            live.stop.cancel();
            let _ = live.task.await;
            drop(live._slave);
        }
        let _ = std::fs::remove_file(&self.link);
        self.shared.with(|m| m.log("-- port vanished".into()));
    }

    /// The port is back (a new pty at the same link) and the modem has
    /// powered on again: settings at their defaults, the PIN asked again,
    /// the SIM's messages still there.
    pub async fn reappear(&mut self) -> io::Result<()> {
        self.vanish().await;
        self.shared.with(|m| {
            m.power_on();
            m.out.clear();
            m.log("-- port reappeared, modem powered on".into());
        });
        self.live = Some(self.start()?);
        Ok(())
    }

    fn start(&self) -> io::Result<Live> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let device = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        match std::fs::symlink_metadata(&self.link) {
            Ok(meta) if meta.is_dir() => {
                let problem = format!("{} is a directory", self.link.display());
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, problem));
            }
            Ok(_) => std::fs::remove_file(&self.link)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(&device, &self.link)?;
        // SAFETY: the `OwnedFd` is open and moves into the `AsyncFd`, which
        // owns it (and nothing else closes or replaces it) until dropped.
        let master = Master(unsafe { AsyncFd::register(pair.master) }?);
        let stop = CancellationToken::new();
        let (shared, token) = (self.shared.clone(), stop.clone());
        let task = tokio::spawn(async move { shared.serve(master, token).await });
        Ok(Live {
            stop,
            task,
            _slave: pair.slave,
            device,
        })
    }
}

impl Drop for PtyHandle {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.stop.cancel();
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

/// The pty's master side as a tokio stream.
struct Master(AsyncFd<OwnedFd>);

/// The master reads EIO once no slave is open: that is end-of-file.
fn eof_on_eio<T: Default>(result: nix::Result<T>) -> io::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(nix::errno::Errno::EIO) => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

impl AsyncRead for Master {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let read = guard.try_io(|fd| eof_on_eio(nix::unistd::read(fd.get_ref(), unfilled)));
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Master {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            let written = guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), buf).map_err(io::Error::from)
            });
            match written {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
