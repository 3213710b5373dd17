//! The simulated modem on a pseudo-terminal, at a path (a symlink to the
//! pty's slave, as `/dev/ttyUSB0` would be a device): clients open it as a
//! serial port. It can vanish (an unplugged USB modem) and reappear.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio::time::Sleep;
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

/// A pty being served. The slave side is not held open, so the modem sees
/// a client leave (EIO); it then moves to a fresh pty at the same link, since
/// a client's `TIOCEXCL` (gammu sets it and leaves it) outlives the client
/// on a pty whose master stays open and would keep every later client out.
#[derive(Debug)]
struct Live {
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
    device: Arc<Mutex<PathBuf>>,
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

    /// The pty's slave device (`/dev/pts/N`) the link points to now (it
    /// changes when a client leaves); `None` while the port has vanished.
    pub fn device(&self) -> Option<PathBuf> {
        let live = self.live.as_ref()?;
        Some(
            live.device
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// The port disappears, as an unplugged USB modem: the pty is closed
    /// (a client with it open reads end-of-file or EIO) and the link removed.
    pub async fn vanish(&mut self) {
        if let Some(live) = self.live.take() {
            live.stop.cancel();
            let _ = live.task.await;
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
        let (mut master, device) = new_pty(&self.link)?;
        let device = Arc::new(Mutex::new(device));
        let stop = CancellationToken::new();
        let (shared, token) = (self.shared.clone(), stop.clone());
        let (link, current) = (self.link.clone(), device.clone());
        let task = tokio::spawn(async move {
            loop {
                shared.serve(master, token.clone()).await?;
                if token.is_cancelled() {
                    return Ok(());
                }
                let (next, path) = new_pty(&link)?;
                shared.with(|m| m.log(format!("-- client left; now at {}", path.display())));
                *current.lock().unwrap_or_else(PoisonError::into_inner) = path;
                master = next;
            }
        });
        Ok(Live { stop, task, device })
    }
}

/// A raw pty, `link` pointing to its slave (replaced atomically, so a
/// client never finds the path missing); its master and slave path.
fn new_pty(link: &Path) -> io::Result<(Master, PathBuf)> {
    let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
    cfmakeraw(&mut termios);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
    let device = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
    drop(pair.slave);
    fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    if std::fs::symlink_metadata(link).is_ok_and(|meta| meta.is_dir()) {
        let problem = format!("{} is a directory", link.display());
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, problem));
    }
    let name = link.file_name().unwrap_or_default().to_string_lossy();
    let temporary = link.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&device, &temporary)?;
    std::fs::rename(&temporary, link)?;
    // SAFETY: the `OwnedFd` is open and moves into the `AsyncFd`, which
    // owns it (and nothing else closes or replaces it) until dropped.
    let fd = unsafe { AsyncFd::register(pair.master) }?;
    let master = Master {
        fd,
        nap: None,
        connected: false,
    };
    Ok((master, device))
}

impl Drop for PtyHandle {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.stop.cancel();
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

/// The pty's master side as a tokio stream. While no client has the slave
/// open, reads fail with EIO (and the fd polls as hung up): before any
/// client spoke, the modem naps and listens again, as a modem waits for a
/// cable; once one has, that is the end of the stream. What it writes with
/// nobody there is lost, as on a cable nobody listens to.
struct Master {
    fd: AsyncFd<OwnedFd>,
    nap: Option<Pin<Box<Sleep>>>,
    /// A client has written something.
    connected: bool,
}

/// How often a modem with nobody connected looks for a client.
const NAP: Duration = Duration::from_millis(20);

impl AsyncRead for Master {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(nap) = self.nap.as_mut() {
                ready!(nap.as_mut().poll(cx));
                self.nap = None;
            }
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let read = guard.try_io(|fd| match nix::unistd::read(fd.get_ref(), unfilled) {
                Err(Errno::EIO) => Ok(None),
                other => other.map(Some).map_err(io::Error::from),
            });
            match read {
                Ok(Ok(Some(n))) => {
                    buf.advance(n);
                    self.connected = true;
                    return Poll::Ready(Ok(()));
                }
                Ok(Ok(None)) if self.connected => return Poll::Ready(Ok(())),
                Ok(Ok(None)) => {
                    guard.clear_ready();
                    self.nap = Some(Box::pin(tokio::time::sleep(NAP)));
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
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let written = guard.try_io(|fd| match nix::unistd::write(fd.get_ref().as_fd(), buf) {
                Err(Errno::EIO) => Ok(buf.len()),
                other => other.map_err(io::Error::from),
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
